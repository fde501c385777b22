"""image/files/voicekey-system-settings.sh: the FAT partition's voicekey-system.txt applied at boot."""

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "image" / "files" / "voicekey-system-settings.sh"


def apply(tmp_path: Path, text: str | None) -> tuple[subprocess.CompletedProcess, Path]:
    settings, run = tmp_path / "voicekey-system.txt", tmp_path / "run"
    if text is not None:
        settings.write_text(text)
    result = subprocess.run(["bash", str(SCRIPT), "--settings", str(settings), "--run-dir", str(run), "--dry-run"],
                            capture_output=True, text=True, check=True)
    return result, run


def test_shipped_file_sets_nothing(tmp_path):
    result, run = apply(tmp_path, (REPO / "image" / "files" / "voicekey-system.txt").read_text())
    assert result.stdout == "" and result.stderr == ""
    assert not (run / "wpa_supplicant.conf").exists()
    assert (run / "authorized_keys").read_text() == ""


def test_missing_file_sets_nothing(tmp_path):
    result, run = apply(tmp_path, None)
    assert result.stdout == "" and not (run / "wpa_supplicant.conf").exists()


def test_hostname_wifi_and_ssh_key(tmp_path):
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTheTest me@pc"
    result, run = apply(tmp_path, f"hostname=kitchen-key\r\nwifi_ssid=Home Net\nwifi_psk=secret pass\n"
                                  f"wifi_country=DE\nssh_authorized_key={key}\n")
    assert "would run: hostname kitchen-key" in result.stdout
    assert "would run: systemctl --no-block start voicekey-wifi.service systemd-networkd.service" in result.stdout
    assert "would run: systemctl --no-block start voicekey-ssh.service" in result.stdout
    wpa = (run / "wpa_supplicant.conf").read_text()
    assert 'ssid="Home Net"' in wpa and 'psk="secret pass"' in wpa and "country=DE" in wpa
    assert (run / "wpa_supplicant.conf").stat().st_mode & 0o777 == 0o600
    assert (run / "authorized_keys").read_text() == key + "\n"


def test_bad_values_are_named_and_ignored(tmp_path):
    result, run = apply(tmp_path, "hostname=bad_name!\nwifi_ssid=x\nwifi_psk=short\nwifi_country=germany\n"
                                  "ssh_authorized_key=not a key\ncolour=blue\njust words\n")
    err = result.stderr
    assert "line 1: hostname 'bad_name!' is not valid" in err
    assert "wifi_psk must be 8-63 characters" in err
    assert "line 4: wifi_country 'germany' must be a two-letter code" in err
    assert "line 5: ssh_authorized_key must be one public key line" in err
    assert "line 6: unknown key 'colour'" in err
    assert "line 7: expected KEY=VALUE" in err
    assert "would run" not in result.stdout
    assert not (run / "wpa_supplicant.conf").exists()
