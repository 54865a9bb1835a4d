"""The pin root and the directories and files beneath it: what another user could plant
there is refused, never used (docs/pinning.md, "Pin root").

Not differential: a bpffs is the kernel's own file system, which no user can pre-create
or fill with links; these are pyebpf's rules for the directory that stands in for it.
The attacks run as two unprivileged users (root needed, else skipped); the rules that
need no second user run in this process.
"""
import errno
import os
import signal
import stat
import tempfile

import pytest

import pyebpf
from pyebpf import pinning
from pyebpf import Map
from pyebpf.errors import BpfError, KernelError, PinError
from pyebpf.isa import BpfCmd as C
from users import (ATTACKER, VICTIM, as_user, assert_refused, plant_link_to_a_trap,  # noqa: F401
                   shared_tmp)

KEY0 = bytes(4)

PLANT_A_PIN = """
bait = pyebpf.Map.create("array", 4, 8, 1)
bait[bytes(4)] = (666).to_bytes(8, "little")
bait.pin("bait")
with open(os.path.join(pyebpf.pin_root(), "bait"), "rb") as f:
    BAIT = f.read()
"""

VICTIM_PINS_AND_GETS = """
m = pyebpf.Map.create("array", 4, 8, 1)
out = {
    "pin": attempt(lambda: m.pin("mine")),
    "get": attempt(lambda: int.from_bytes(pyebpf.Map.from_pin("counts")[bytes(4)], "little")),
}
"""


def root_of(tmp, uid):
    return os.path.join(tmp, f"pyebpf-{uid}")


# --- attacks by a second user ---------------------------------------------------------

def test_a_pin_root_another_user_made_writable_by_all_is_refused(shared_tmp):
    root = root_of(shared_tmp, VICTIM)
    as_user(ATTACKER, shared_tmp, PLANT_A_PIN + f"""
os.mkdir({root!r})
os.chmod({root!r}, 0o777)
with open(os.path.join({root!r}, "counts"), "wb") as f:
    f.write(BAIT)
out = None
""")
    out = as_user(VICTIM, shared_tmp, VICTIM_PINS_AND_GETS)
    for outcome in out.values():
        assert_refused(outcome, f"pin root {root} is owned by uid {ATTACKER}, not by you "
                                f"(uid {VICTIM})", "PYEBPF_PIN_ROOT")
    assert os.listdir(root) == ["counts"]


def test_a_pin_root_of_the_users_own_writable_by_others_is_refused(shared_tmp):
    root = root_of(shared_tmp, VICTIM)
    out = as_user(VICTIM, shared_tmp, f"""
os.mkdir({root!r})
os.chmod({root!r}, 0o777)
out = attempt(lambda: pyebpf.Map.create("array", 4, 8, 1).pin("mine"))
""")
    assert_refused(out, f"pin root {root} is writable by its group and others (mode 0777)",
                   "PYEBPF_PIN_ROOT")
    assert os.listdir(root) == []


def test_a_pin_root_owned_by_another_user_is_refused_even_when_only_they_can_write(
        shared_tmp):
    root = root_of(shared_tmp, VICTIM)
    as_user(ATTACKER, shared_tmp, PLANT_A_PIN + f"""
os.mkdir({root!r}, 0o755)
with open(os.path.join({root!r}, "counts"), "wb") as f:
    f.write(BAIT)
out = None
""")
    out = as_user(VICTIM, shared_tmp, VICTIM_PINS_AND_GETS)
    for outcome in out.values():
        assert_refused(outcome, f"is owned by uid {ATTACKER}, not by you (uid {VICTIM})")


def test_a_pin_root_that_is_a_symbolic_link_is_refused_and_its_target_untouched(
        shared_tmp):
    root = root_of(shared_tmp, VICTIM)
    trap = plant_link_to_a_trap(shared_tmp, root)
    out = as_user(VICTIM, shared_tmp, VICTIM_PINS_AND_GETS)
    for outcome in out.values():
        assert_refused(outcome, f"pin root {root} is a symbolic link (to {trap})",
                       "PYEBPF_PIN_ROOT")
    assert os.listdir(trap) == []


def test_a_regular_file_at_the_pin_root_is_a_one_line_pin_error(shared_tmp):
    root = root_of(shared_tmp, VICTIM)
    as_user(ATTACKER, shared_tmp, f"""
with open({root!r}, "w") as f:
    f.write("not a directory")
out = None
""")
    out = as_user(VICTIM, shared_tmp, VICTIM_PINS_AND_GETS)
    for outcome in out.values():
        assert_refused(outcome, f"pin root {root} is not a directory", "PYEBPF_PIN_ROOT")


def test_a_pin_file_another_user_replaced_with_a_link_is_not_followed(shared_tmp):
    """The victim's root is sound, but a subdirectory of it lets others write: the
    attacker swaps the victim's pin for a link to a pin of theirs."""
    root = root_of(shared_tmp, VICTIM)
    shared = os.path.join(root, "shared")
    as_user(VICTIM, shared_tmp, f"""
m = pyebpf.Map.create("array", 4, 8, 1)
m[bytes(4)] = (7).to_bytes(8, "little")
os.makedirs({shared!r}, mode=0o700)
m.pin("shared/counts")
os.chmod({shared!r}, 0o777)
os.chmod({root!r}, 0o711)
out = None
""")
    as_user(ATTACKER, shared_tmp, PLANT_A_PIN + f"""
os.unlink(os.path.join({shared!r}, "counts"))
os.symlink(os.path.join(pyebpf.pin_root(), "bait"), os.path.join({shared!r}, "counts"))
out = None
""")
    out = as_user(VICTIM, shared_tmp, """
out = attempt(lambda: int.from_bytes(pyebpf.Map.from_pin("shared/counts")[bytes(4)],
                                     "little"))
""")
    assert_refused(out, f"{shared} is writable by its group and others (mode 0777)")


def test_a_directory_another_user_replaced_with_a_link_gets_no_pin(shared_tmp):
    """A link planted at tc/globals would send the victim's pins into the attacker's
    directory."""
    root = root_of(shared_tmp, VICTIM)
    tc = os.path.join(root, "tc")
    as_user(VICTIM, shared_tmp, f"""
os.makedirs({tc!r}, mode=0o700)
os.chmod({tc!r}, 0o777)
os.chmod({root!r}, 0o711)
out = None
""")
    trap = plant_link_to_a_trap(shared_tmp, os.path.join(tc, "globals"))
    out = as_user(VICTIM, shared_tmp, """
m = pyebpf.Map.create("array", 4, 8, 1)
out = attempt(lambda: m.pin("tc/globals/counts"))
""")
    assert_refused(out, f"{tc} is writable by its group and others (mode 0777)")
    assert os.listdir(trap) == []


def test_two_users_each_pin_in_a_private_root_of_their_own(shared_tmp):
    code = """
m = pyebpf.Map.create("array", 4, 8, 1)
m[bytes(4)] = os.getuid().to_bytes(8, "little")
m.pin("counts")
out = str(pyebpf.pin_root())
"""
    roots = {uid: as_user(uid, shared_tmp, code) for uid in (VICTIM, ATTACKER)}
    got = """
out = int.from_bytes(pyebpf.Map.from_pin("counts")[bytes(4)], "little")
"""
    for uid, root in roots.items():
        st = os.lstat(root)
        assert (root, st.st_uid, stat.S_IMODE(st.st_mode)) == (root_of(shared_tmp, uid), uid,
                                                                 0o700)
        assert as_user(uid, shared_tmp, got) == uid


# --- the rules, in this process --------------------------------------------------------

@pytest.fixture
def pin_root(tmp_path, monkeypatch):
    root = tmp_path / "pins"
    root.mkdir(mode=0o700)
    monkeypatch.setenv("PYEBPF_PIN_ROOT", str(root))
    return root


@pytest.fixture
def default_root(tmp_path, monkeypatch):
    """No PYEBPF_PIN_ROOT or XDG_RUNTIME_DIR: the root is <tmp>/pyebpf-<uid>, <tmp> here a
    directory of this test's."""
    monkeypatch.delenv("PYEBPF_PIN_ROOT", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path / f"pyebpf-{os.getuid()}"


@pytest.fixture
def no_umask():
    """A umask of 0, so that what pyebpf makes has the mode pyebpf asks for."""
    old = os.umask(0)
    yield
    os.umask(old)


def test_a_missing_default_pin_root_is_made_private(default_root, no_umask):
    Map.create("array", 4, 8, 1).pin("counts")
    st = os.lstat(default_root)
    assert (stat.S_ISDIR(st.st_mode), st.st_uid, stat.S_IMODE(st.st_mode)) == \
        (True, os.geteuid(), 0o700)


def test_a_root_someone_else_makes_while_it_is_being_made_is_checked_not_trusted(
        default_root, monkeypatch):
    """Between finding no root and making it, another process makes one (mode 0777):
    the failed mkdir is no reason to use it."""
    def beaten(path, mode):
        os.mkdir(path)
        os.chmod(path, 0o777)
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), path)
    monkeypatch.setattr(os, "makedirs", beaten)
    with pytest.raises(PinError, match=f"pin root {default_root} is writable by its group "
                                       "and others \\(mode 0777\\)"):
        Map.create("array", 4, 8, 1).pin("counts")
    assert os.listdir(default_root) == []


def test_the_runtime_dir_root_is_checked_like_the_one_in_tmp(tmp_path, monkeypatch):
    monkeypatch.delenv("PYEBPF_PIN_ROOT")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    (tmp_path / "pyebpf").mkdir()
    os.chmod(tmp_path / "pyebpf", 0o770)
    with pytest.raises(PinError, match=f"pin root {tmp_path / 'pyebpf'} is writable by its "
                                       "group \\(mode 0770\\)") as exc:
        Map.create("array", 4, 8, 1).pin("counts")
    assert exc.value.errno == errno.EPERM


def test_a_chosen_pin_root_is_checked_too(tmp_path, monkeypatch):
    monkeypatch.setenv("PYEBPF_PIN_ROOT", str(tmp_path / "pins"))
    (tmp_path / "pins").mkdir()
    os.chmod(tmp_path / "pins", 0o707)
    with pytest.raises(PinError, match="is writable by others \\(mode 0707\\)"):
        Map.from_pin("counts")


def test_a_chosen_pin_root_may_be_reached_through_a_linked_parent(tmp_path, monkeypatch):
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    monkeypatch.setenv("PYEBPF_PIN_ROOT", str(tmp_path / "alias" / "pins"))
    m = Map.create("array", 4, 8, 1)
    m.pin("counts")
    assert (tmp_path / "real" / "pins" / "counts").is_file()
    assert Map.from_pin(str(tmp_path / "alias" / "pins" / "counts")) is m


def test_a_chosen_pin_root_that_is_a_link_is_refused(tmp_path, monkeypatch):
    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "pins").symlink_to(tmp_path / "real")
    monkeypatch.setenv("PYEBPF_PIN_ROOT", str(tmp_path / "pins"))
    with pytest.raises(PinError, match=f"pin root {tmp_path / 'pins'} is a symbolic link"):
        Map.create("array", 4, 8, 1).pin("counts")


def test_a_pin_file_linking_out_of_the_root_is_refused_and_not_read(pin_root, tmp_path):
    outside = tmp_path / "outside"
    outside.write_bytes(b"PYEBPFPN" + bytes(56))
    (pin_root / "counts").symlink_to(outside)
    with pytest.raises(PinError, match=f"{pin_root / 'counts'} is a symbolic link to "
                                       f"{outside}, outside the pin root {pin_root}") as exc:
        Map.from_pin("counts")
    assert exc.value.errno == errno.EPERM


def test_a_second_name_is_a_link_inside_the_root_and_is_followed(pin_root):
    m = Map.create("array", 4, 8, 1)
    m.pin("counts")
    m.pin("alias")
    assert os.readlink(pin_root / "alias") == "counts"
    pinning._live.clear()
    got = Map.from_pin("alias")
    assert got is Map.from_pin("counts") and got is not m


def test_a_linked_map_whose_file_became_a_link_refuses_and_writes_nothing(pin_root,
                                                                          tmp_path):
    m = Map.create("array", 4, 8, 1)
    m.pin("counts")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes((pin_root / "counts").read_bytes())
    (pin_root / "counts").unlink()
    (pin_root / "counts").symlink_to(elsewhere)
    before = elsewhere.read_bytes()
    with pytest.raises(PinError, match=f"cannot open {pin_root / 'counts'}") as exc:
        m[KEY0] = (1).to_bytes(8, "little")
    assert exc.value.errno == errno.ELOOP
    assert elsewhere.read_bytes() == before and os.path.islink(pin_root / "counts")


@pytest.mark.parametrize("target", ["inside", "outside"])
def test_a_linked_directory_in_the_root_is_refused_and_nothing_made_through_it(
        pin_root, tmp_path, target):
    real = pin_root / "real" if target == "inside" else tmp_path / "outside"
    real.mkdir(mode=0o700)
    (pin_root / "tc").symlink_to(real)
    m = Map.create("array", 4, 8, 1)
    for attempt in (lambda: pinning.makedirs("tc/globals"), lambda: m.pin("tc/counts"),
                    lambda: Map.from_pin("tc/counts")):
        with pytest.raises(PinError, match=f"{pin_root / 'tc'} is a symbolic link "
                                           f"\\(to {real}\\)") as exc:
            attempt()
        assert exc.value.errno == errno.EPERM
    assert list(real.iterdir()) == []


def test_a_directory_in_the_root_that_others_can_write_is_refused(pin_root):
    (pin_root / "tc").mkdir()
    os.chmod(pin_root / "tc", 0o1777)
    with pytest.raises(PinError, match=f"{pin_root / 'tc'} is writable by its group and "
                                       "others \\(mode 1777\\)"):
        Map.create("array", 4, 8, 1).pin("tc/counts")


def test_directories_pyebpf_makes_in_the_root_are_private(pin_root, no_umask):
    pinning.makedirs("tc/globals")
    modes = [stat.S_IMODE(os.lstat(d).st_mode) for d in (pin_root / "tc",
                                                          pin_root / "tc" / "globals")]
    assert modes == [0o700, 0o700]


def test_a_fifo_at_a_pin_path_is_eacces_at_once(pin_root):
    """Opening a FIFO for reading waits for a writer: the pin must not."""
    def waited(signum, frame):
        raise TimeoutError("Map.from_pin waited on a FIFO")
    os.mkfifo(pin_root / "fifo")
    previous = signal.signal(signal.SIGALRM, waited)
    signal.alarm(10)
    try:
        with pytest.raises(PinError, match=f"{pin_root / 'fifo'} is not a regular file, "
                                           "not a pinned object") as exc:
            Map.from_pin("fifo")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert exc.value.errno == errno.EACCES


@pytest.mark.parametrize("what", ["fifo", "dangling second name"])
def test_getting_a_fifo_or_a_dangling_link_fails_as_in_the_kernel(live_kernel, pin_root,
                                                                    what):
    """The kernel side's path lies outside a bpffs (none can hold a FIFO): a FIFO is no
    BPF inode (EACCES, without waiting for a writer), a link to nothing is ENOENT."""
    if what == "fifo":
        os.mkfifo(pin_root / "x")
    else:
        (pin_root / "x").symlink_to("gone")
    with pytest.raises(KernelError) as theirs:
        live_kernel.sysbpf.command(C.BPF_OBJ_GET, {"pathname": str(pin_root / "x")})
    with pytest.raises(BpfError) as ours:
        pyebpf.bpf(C.BPF_OBJ_GET, {"pathname": "x"})
    assert ours.value.errno == theirs.value.errno, (ours.value, theirs.value)
