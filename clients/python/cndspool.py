"""Drop IaaS events and inventory into a cndspool spool, from Python.

A drop-in replacement for the original CndEventLogger library: the same classes, method
names and keyword arguments; only the constructor changes. Each call writes one small JSON
file into the spool (a temporary file in ``tmp/``, mode 0640, fsynced, renamed into
``new/``) and returns its path. Nothing here touches the network: the cndspool daemon
delivers the file to Consul, and keeps it while Consul is down.

Before::

    event = CndEvent(host, port, token, protocol)

After::

    from cndspool import CndEvent, CndInventory
    event = CndEvent(spool_dir="/var/spool/cndspool")
    event.deployment_start(deployment_id="dep-42", service="webshop")

Standard library only; Python 3.8 or later.
"""

import datetime
import errno
import json
import os
import secrets
import time

__all__ = ["CndEvent", "CndInventory", "DEFAULT_SPOOL"]

DEFAULT_SPOOL = "/var/spool/cndspool"

_STR = "a string"
_BOOL = "a boolean"
_UINT = "a non-negative integer"
_STRLIST = "a list of strings"
_DATETIME = "a datetime or an RFC 3339 string"

_DEPLOYMENT = {"service": _STR, "deployment_name": _STR, "project": _STR, "source": _STR, "owner": _STR}
_HOST = {"host_id": _STR, "tiers": _STR, "deployment_id": _STR, "source": _STR, "domain": _STR}
_WORKFLOW = {"application": _STR, "name": _STR, "hostname": _STR, "domain": _STR, "deployment_id": _STR}

# type -> (required fields, optional fields), each field -> its expected kind.
_SCHEMA = {
    "deployment_start": ({"deployment_id": _STR}, dict(_DEPLOYMENT, start_at=_DATETIME)),
    "deployment_end": (
        {"deployment_id": _STR, "success": _BOOL},
        dict(_DEPLOYMENT, start_at=_DATETIME, end_at=_DATETIME),
    ),
    "host_start": ({"hostname": _STR}, dict(_HOST, start_at=_DATETIME)),
    "host_end": ({"hostname": _STR, "success": _BOOL}, dict(_HOST, start_at=_DATETIME, end_at=_DATETIME)),
    "host_workflow_start": ({"workflow_id": _STR}, dict(_WORKFLOW, start_at=_DATETIME)),
    "host_workflow_end": (
        {"workflow_id": _STR, "success": _BOOL},
        dict(_WORKFLOW, start_at=_DATETIME, end_at=_DATETIME),
    ),
    "vra": (
        {"uuid": _STR, "hostname": _STR, "source": _STR},
        {
            "domain": _STR, "tiers": _STR, "datacenter": _STR, "deployment_id": _STR,
            "cloud_account": _STR, "cpu": _UINT, "memory": _UINT, "os_type": _STR,
            "software_name": _STR, "power_state": _BOOL, "tags": _STRLIST,
            "item_created_at": _DATETIME, "item_updated_at": _DATETIME, "deleted": _BOOL,
        },
    ),
    "app": ({"uuid": _STR, "hostname": _STR, "source": _STR}, {"application": _STR, "domain": _STR, "deleted": _BOOL}),
}


def _check(kind, name, value):
    """The JSON value of ``value`` for a field of ``kind``; ValueError naming ``name``."""
    ok = {
        _STR: lambda v: isinstance(v, str),
        _BOOL: lambda v: isinstance(v, bool),
        _UINT: lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
        _STRLIST: lambda v: isinstance(v, (list, tuple)) and all(isinstance(i, str) for i in v),
        _DATETIME: lambda v: isinstance(v, (str, datetime.datetime)),
    }[kind](value)
    if not ok:
        raise ValueError("%s must be %s, not %r" % (name, kind, value))
    if isinstance(value, datetime.datetime):
        # A naive datetime is the host's local time: say which offset that is.
        if value.tzinfo is None:
            value = value.astimezone()
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def _record(record_type, fields):
    """A validated record: required fields present, every known field of its type."""
    required, optional = _SCHEMA[record_type]
    record = {"type": record_type}
    for name, kind in required.items():
        value = fields.get(name)
        if value is None:
            raise ValueError("%s: %s is required" % (record_type, name))
        record[name] = _check(kind, name, value)
    for name, value in fields.items():
        if name in required or value is None:
            continue
        kind = optional.get(name)
        # Fields the type does not know are kept as they are (the daemon stores them
        # under "raw"), as the original library did.
        record[name] = _check(kind, name, value) if kind else value
    return record


class _Spool(object):
    """The drop protocol: tmp/, 0640, fsync, rename into new/ without overwriting."""

    def __init__(self, spool_dir=DEFAULT_SPOOL):
        self.spool_dir = os.fspath(spool_dir)

    def _drop(self, record_type, fields):
        record = _record(record_type, fields)
        try:
            data = json.dumps(record, ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as e:
            raise ValueError("%s: a field cannot be written as JSON: %s" % (record_type, e))
        tmp_dir = os.path.join(self.spool_dir, "tmp")
        new_dir = os.path.join(self.spool_dir, "new")
        while True:
            # Sorts by drop time; unique across processes and threads.
            name = "%016d-%d-%s.json" % (time.time_ns() // 1000, os.getpid(), secrets.token_hex(4))
            tmp_path = os.path.join(tmp_dir, name)
            try:
                fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
            except FileExistsError:
                continue
            except OSError as e:
                raise _spool_error(e, tmp_dir)
            try:
                try:
                    os.fchmod(fd, 0o640)  # the umask may have narrowed the mode
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    os.fsync(fd)
                finally:
                    os.close(fd)
                final = os.path.join(new_dir, name)
                try:
                    os.link(tmp_path, final)  # never overwrites
                except FileExistsError:
                    continue
                except OSError as e:
                    if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV):
                        raise _spool_error(e, new_dir)
                    os.replace(tmp_path, final)  # no hard links here: names are unique
            finally:
                if os.path.exists(tmp_path):
                    os.unlink(tmp_path)
            _fsync_dir(new_dir)
            return final


def _spool_error(error, folder):
    return OSError(
        error.errno,
        "cannot drop a file into the cndspool spool folder %s: %s (is the spool installed, "
        "and is this user in its group?)" % (folder, error.strerror),
        folder,
    )


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class CndEvent(_Spool):
    """Events: deployments, host builds and workflows, each a start and an end."""

    def deployment_start(self, deployment_id=None, service=None, deployment_name=None, project=None,
                         source=None, owner=None, start_at=None, **extra):
        """A deployment started. Returns the dropped file's path."""
        return self._drop("deployment_start", dict(extra, deployment_id=deployment_id, service=service,
                          deployment_name=deployment_name, project=project, source=source, owner=owner,
                          start_at=start_at))

    def deployment_end(self, success=None, deployment_id=None, service=None, deployment_name=None,
                       project=None, source=None, owner=None, start_at=None, end_at=None, **extra):
        """A deployment ended, successfully or not. Returns the dropped file's path."""
        return self._drop("deployment_end", dict(extra, success=success, deployment_id=deployment_id,
                          service=service, deployment_name=deployment_name, project=project,
                          source=source, owner=owner, start_at=start_at, end_at=end_at))

    def host_start(self, hostname=None, host_id=None, tiers=None, deployment_id=None, source=None,
                   domain=None, start_at=None, **extra):
        """A host started to build. Returns the dropped file's path."""
        return self._drop("host_start", dict(extra, hostname=hostname, host_id=host_id, tiers=tiers,
                          deployment_id=deployment_id, source=source, domain=domain, start_at=start_at))

    def host_end(self, success=None, hostname=None, host_id=None, tiers=None, deployment_id=None,
                 source=None, domain=None, start_at=None, end_at=None, **extra):
        """A host finished building. Returns the dropped file's path."""
        return self._drop("host_end", dict(extra, success=success, hostname=hostname, host_id=host_id,
                          tiers=tiers, deployment_id=deployment_id, source=source, domain=domain,
                          start_at=start_at, end_at=end_at))

    def host_workflow_start(self, workflow_id=None, application=None, name=None, domain=None,
                            hostname=None, deployment_id=None, start_at=None, **extra):
        """A workflow started on a host. Returns the dropped file's path."""
        return self._drop("host_workflow_start", dict(extra, workflow_id=workflow_id, application=application,
                          name=name, domain=domain, hostname=hostname, deployment_id=deployment_id,
                          start_at=start_at))

    def host_workflow_end(self, success=None, workflow_id=None, application=None, name=None, domain=None,
                          hostname=None, deployment_id=None, start_at=None, end_at=None, **extra):
        """A workflow finished on a host. Returns the dropped file's path."""
        return self._drop("host_workflow_end", dict(extra, success=success, workflow_id=workflow_id,
                          application=application, name=name, domain=domain, hostname=hostname,
                          deployment_id=deployment_id, start_at=start_at, end_at=end_at))


class CndInventory(_Spool):
    """Inventory: vRA virtual machines and applications."""

    def vra(self, uuid=None, hostname=None, domain=None, tiers=None, datacenter=None, deployment_id=None,
            source=None, cloud_account=None, cpu=None, memory=None, os_type=None, software_name=None,
            power_state=None, tags=None, item_updated_at=None, item_created_at=None, deleted=None, **extra):
        """A vRA VM as it is now. Returns the dropped file's path."""
        return self._drop("vra", dict(extra, uuid=uuid, hostname=hostname, domain=domain, tiers=tiers,
                          datacenter=datacenter, deployment_id=deployment_id, source=source,
                          cloud_account=cloud_account, cpu=cpu, memory=memory, os_type=os_type,
                          software_name=software_name, power_state=power_state, tags=tags,
                          item_updated_at=item_updated_at, item_created_at=item_created_at, deleted=deleted))

    def app(self, source=None, uuid=None, domain=None, hostname=None, deleted=None, application=None, **extra):
        """An application on a host. Returns the dropped file's path."""
        return self._drop("app", dict(extra, source=source, uuid=uuid, domain=domain, hostname=hostname,
                          deleted=deleted, application=application))
