import pytest

from appliance.errors import GadgetError
from appliance.gadget.configfs import (DESCRIPTOR_REVISION, FUNCTION, Gadget, GadgetSettings,
                                       descriptor_digest)
from appliance.hid.report import BOOT_KEYBOARD_DESCRIPTOR
from tests.gadget.fake_configfs import FakeConfigFs



@pytest.fixture
def roots(tmp_path):
    cfg, sys_ = tmp_path / "config", tmp_path / "sys"
    (sys_ / "class" / "udc" / "dummy_udc.0").mkdir(parents=True)
    (sys_ / "class" / "udc" / "dummy_udc.0" / "state").write_text("not attached\n")
    (sys_ / "dev" / "char" / "236:0").mkdir(parents=True)
    (sys_ / "dev" / "char" / "236:0" / "uevent").write_text("MAJOR=236\nMINOR=0\nDEVNAME=hidg0\n")
    return cfg, sys_


def make(roots):
    cfg, sys_ = roots
    fs = FakeConfigFs(cfg, sys_)
    return Gadget(cfg, sys_, fs=fs), fs


def test_up_writes_boot_keyboard_and_binds(roots):
    g, fs = make(roots)
    st = g.up()
    fn = g.root / "functions" / FUNCTION
    assert (fn / "protocol").read_bytes() == b"1"
    assert (fn / "subclass").read_bytes() == b"1"
    assert (fn / "report_length").read_bytes() == b"8"
    assert (fn / "report_desc").read_bytes() == BOOT_KEYBOARD_DESCRIPTOR
    assert (g.root / "bcdDevice").read_bytes() == f"0x{DESCRIPTOR_REVISION:04x}".encode()
    assert (g.root / "configs" / "c.1" / "MaxPower").read_bytes() == b"100"
    assert (g.root / "configs" / "c.1" / FUNCTION).is_symlink()
    assert st.udc == "dummy_udc.0" and st.configured and st.device == "/dev/hidg0"
    # UDC is written last, after every descriptor
    assert fs.writes[-1] == ("UDC", b"dummy_udc.0")


def test_up_is_idempotent(roots):
    g, fs = make(roots)
    g.up()
    n = len(fs.writes)
    st = g.up()
    assert len(fs.writes) == n and st.configured


def test_changed_descriptor_rebinds(roots, monkeypatch):
    g, fs = make(roots)
    g.up()
    (g.root / "bcdDevice").write_bytes(b"0x0001")  # as if an older VoiceKey had set it up
    g.up()
    names = [w[0] for w in fs.writes]
    assert names.count("UDC") == 3  # bind, unbind, bind
    assert (g.root / "bcdDevice").read_bytes() == f"0x{DESCRIPTOR_REVISION:04x}".encode()


def test_down_removes_everything_and_up_again(roots):
    g, _ = make(roots)
    g.up()
    g.down()
    assert not g.root.exists()
    g.down()  # idempotent
    assert g.up().configured


def test_status_without_gadget(roots):
    g, _ = make(roots)
    st = g.status()
    assert not st.exists and st.udc is None and not st.configured


def test_no_udc_explains_dwc2(tmp_path):
    cfg, sys_ = tmp_path / "config", tmp_path / "sys"
    (sys_ / "class" / "udc").mkdir(parents=True)
    g = Gadget(cfg, sys_, fs=FakeConfigFs(cfg, sys_))
    with pytest.raises(GadgetError, match="no USB device controller") as e:
        g.up()
    assert "dtoverlay=dwc2" in e.value.fix


def test_no_configfs_explains_mount(tmp_path):
    g = Gadget(tmp_path / "nothing", tmp_path / "sys")
    with pytest.raises(GadgetError, match="configfs") as e:
        g.up()
    assert "modprobe libcomposite" in e.value.fix


def test_unknown_udc_named(roots):
    g, _ = make(roots)
    with pytest.raises(GadgetError, match="fe980000.usb"):
        g.up(udc="fe980000.usb")


def test_not_root_is_explained(roots, monkeypatch):
    g, fs = make(roots)

    def deny(path, data):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(fs, "write", deny)
    with pytest.raises(GadgetError, match="permission denied") as e:
        g.up()
    assert "root" in e.value.fix


def test_descriptor_revision_pinned():
    # If this fails you changed the report descriptor: bump DESCRIPTOR_REVISION and update the hash.
    assert (DESCRIPTOR_REVISION, descriptor_digest()) == (
        0x0101, "81c9b5a7d7ecf4b95e29ce9b164556dcabd48b7a4eda208cac92a53506580de8")


def test_settings_are_used(roots):
    cfg, sys_ = roots
    g = Gadget(cfg, sys_, GadgetSettings(name="kb2", serial="XYZ"), fs=FakeConfigFs(cfg, sys_))
    g.up()
    assert (cfg / "usb_gadget" / "kb2" / "strings" / "0x409" / "serialnumber").read_bytes() == b"XYZ"
