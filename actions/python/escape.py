"""escape: container breakout basics from inside a python:3 action; reports what the sandbox allowed.

params {"op": "privileges" | "forkbomb" | "files"}
  privileges  uid, capabilities, no_new_privs, and the outcome of mount, a raw socket, chown, the
              Docker socket and the visible processes ({"mount": "PermissionError: ...", ...})
  forkbomb    forks children until the kernel refuses -> {"forked": n, "refused": "BlockingIOError: ..."}
  files       opens /dev/null until the kernel refuses -> {"opened": n, "refused": "OSError: ..."}
"""

import ctypes
import ctypes.util
import os
import resource
import socket
import tempfile


def main(args):
    op = args.get("op", "privileges")
    if op == "forkbomb":
        return forkbomb()
    if op == "files":
        return files()
    return privileges()


def privileges():
    with open("/proc/self/status") as file:
        status = dict(line.split(":\t", 1) for line in file.read().splitlines() if ":\t" in line)
    return {
        "uid": os.getuid(),
        "cap_eff": status["CapEff"].strip(),
        "cap_bnd": status["CapBnd"].strip(),
        "no_new_privs": status["NoNewPrivs"].strip(),
        "mount": attempt(mount_tmpfs),
        "raw_socket": attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()),
        "chown": attempt(chown_to_root),
        "setuid": attempt(lambda: os.setuid(0)),
        "docker_socket": [p for p in ("/var/run/docker.sock", "/run/docker.sock") if os.path.exists(p)],
        "processes": sorted(comm(pid) for pid in os.listdir("/proc") if pid.isdigit()),
        "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
    }


def attempt(fn):
    try:
        fn()
    except OSError as error:
        return f"{type(error).__name__}: {os.strerror(error.errno) if error.errno else error}"
    return "allowed"


def mount_tmpfs():
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.mount(b"none", b"/tmp", b"tmpfs", 0, None) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def chown_to_root():
    with tempfile.NamedTemporaryFile() as file:
        os.chown(file.name, 0, 0)


def comm(pid):
    try:
        return open(f"/proc/{pid}/comm").read().strip()
    except OSError:
        return "?"


def forkbomb():
    children, refused = [], None
    try:
        while len(children) < 100_000:
            pid = os.fork()
            if pid == 0:
                # The child exits at once but stays a zombie, unreaped, until the loop ends: it keeps
                # its pid (what the bomb is after) and gives back its memory.
                os._exit(0)
            children.append(pid)
    except OSError as exc:
        refused = f"{type(exc).__name__}: {os.strerror(exc.errno)}"
    for pid in children:
        os.waitpid(pid, 0)
    return {"forked": len(children), "refused": refused}


def files():
    fds, refused = [], None
    try:
        while len(fds) < 1_000_000:
            fds.append(os.open("/dev/null", os.O_RDONLY))
    except OSError as exc:
        refused = f"{type(exc).__name__}: {os.strerror(exc.errno)}"
    for fd in fds:
        os.close(fd)
    return {"opened": len(fds), "refused": refused}
