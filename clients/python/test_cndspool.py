"""Tests for the cndspool Python producer (standard library unittest)."""

import datetime
import json
import os
import stat
import tempfile
import unittest

import cndspool


class SpoolTestCase(unittest.TestCase):
    def setUp(self):
        self._dir = tempfile.TemporaryDirectory()
        self.spool = self._dir.name
        for sub in ("tmp", "new", "failed"):
            os.mkdir(os.path.join(self.spool, sub))
        self.event = cndspool.CndEvent(spool_dir=self.spool)
        self.inv = cndspool.CndInventory(spool_dir=self.spool)

    def tearDown(self):
        self._dir.cleanup()

    def dropped(self):
        return sorted(os.listdir(os.path.join(self.spool, "new")))

    def read(self, path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)


class DropProtocolTest(SpoolTestCase):
    def test_one_0640_file_in_new_and_nothing_left_in_tmp(self):
        path = self.event.host_start(hostname="web01", tiers="frontend")
        self.assertEqual(os.path.dirname(path), os.path.join(self.spool, "new"))
        self.assertEqual(len(self.dropped()), 1)
        self.assertEqual(os.listdir(os.path.join(self.spool, "tmp")), [])
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o640)
        self.assertTrue(path.endswith(".json"))
        self.assertFalse(os.path.basename(path).startswith("."))
        self.assertEqual(self.read(path), {"type": "host_start", "hostname": "web01", "tiers": "frontend"})

    def test_names_sort_by_drop_time_and_are_unique(self):
        paths = [self.event.host_start(hostname="h%d" % i) for i in range(30)]
        self.assertEqual(paths, sorted(paths))
        self.assertEqual(len(set(paths)), 30)

    def test_a_missing_spool_raises_oserror_naming_the_folder(self):
        event = cndspool.CndEvent(spool_dir=os.path.join(self.spool, "nope"))
        with self.assertRaises(OSError) as caught:
            event.host_start(hostname="web01")
        self.assertIn(os.path.join(self.spool, "nope", "tmp"), str(caught.exception))

    def test_default_spool(self):
        self.assertEqual(cndspool.CndEvent().spool_dir, "/var/spool/cndspool")


class RecordTest(SpoolTestCase):
    def test_every_method_writes_its_type(self):
        calls = [
            (self.event.deployment_start, dict(deployment_id="d1", service="s")),
            (self.event.deployment_end, dict(success=True, deployment_id="d1")),
            (self.event.host_start, dict(hostname="h")),
            (self.event.host_end, dict(success=False, hostname="h")),
            (self.event.host_workflow_start, dict(workflow_id="w", name="install")),
            (self.event.host_workflow_end, dict(success=True, workflow_id="w")),
            (self.inv.vra, dict(uuid="u", hostname="h", source="vra8", cpu=4, tags=["a"])),
            (self.inv.app, dict(uuid="u", hostname="h", source="cmdb", deleted=False)),
        ]
        for method, kwargs in calls:
            record = self.read(method(**kwargs))
            self.assertEqual(record.pop("type"), method.__name__)
            self.assertEqual(record, kwargs)

    def test_datetimes_become_rfc3339(self):
        aware = datetime.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=datetime.timezone.utc)
        record = self.read(self.event.deployment_start(deployment_id="d", start_at=aware))
        self.assertEqual(record["start_at"], "2024-05-01T12:00:00.123456+00:00")
        naive = datetime.datetime(2024, 5, 1, 12, 0, 0)
        record = self.read(self.inv.vra(uuid="u", hostname="h", source="s", item_created_at=naive))
        parsed = datetime.datetime.fromisoformat(record["item_created_at"])
        self.assertIsNotNone(parsed.tzinfo, "a naive datetime is given its local offset")
        self.assertEqual(parsed.replace(tzinfo=None), naive)

    def test_none_is_not_given_and_extra_fields_are_kept(self):
        record = self.read(self.event.host_start(hostname="h", domain=None, ticket="CHG-1"))
        self.assertEqual(record, {"type": "host_start", "hostname": "h", "ticket": "CHG-1"})


class InvalidTest(SpoolTestCase):
    def assert_invalid(self, call, needle):
        with self.assertRaises(ValueError) as caught:
            call()
        self.assertIn(needle, str(caught.exception))
        self.assertEqual(self.dropped(), [], "nothing is written")
        self.assertEqual(os.listdir(os.path.join(self.spool, "tmp")), [])

    def test_a_missing_required_argument_is_named(self):
        self.assert_invalid(lambda: self.event.host_end(hostname="h"), "success")
        self.assert_invalid(lambda: self.inv.vra(uuid="u", hostname="h"), "source")
        self.assert_invalid(lambda: self.event.deployment_start(), "deployment_id")

    def test_a_wrong_type_is_named(self):
        self.assert_invalid(lambda: self.inv.vra(uuid="u", hostname="h", source="s", cpu="4"), "cpu")
        self.assert_invalid(lambda: self.inv.vra(uuid="u", hostname="h", source="s", cpu=-1), "cpu")
        self.assert_invalid(lambda: self.inv.vra(uuid="u", hostname="h", source="s", cpu=True), "cpu")
        self.assert_invalid(lambda: self.event.host_end(hostname="h", success="yes"), "success")
        self.assert_invalid(lambda: self.inv.vra(uuid="u", hostname="h", source="s", tags=["a", 1]), "tags")
        self.assert_invalid(lambda: self.event.host_start(hostname=42), "hostname")
        self.assert_invalid(lambda: self.event.host_start(hostname="h", start_at=3), "start_at")


if __name__ == "__main__":
    unittest.main()
