"""Configuration: defaults, dotted keys, atomic TOML writes, reload, errors."""

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import covalent as ct
from covalent import _config
from covalent._errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# helpers


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    """Config, data and cache folders of this test's own, and no overriding environment."""
    dirs = SimpleNamespace(
        config=tmp_path / "config", data=tmp_path / "data", cache=tmp_path / "cache"
    )
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("COVALENT_CONFIG_DIR", str(dirs.config))
    monkeypatch.setenv("COVALENT_DATA_DIR", str(dirs.data))
    monkeypatch.setenv("COVALENT_CACHE_DIR", str(dirs.cache))
    for name in ("COVALENT_LOG_LEVEL", "COVALENT_DATABASE_URL", "COVALENT_SERVER_URL"):
        monkeypatch.delenv(name, raising=False)
    dirs.file = dirs.config / "covalent.conf"
    _config.reload()
    yield dirs
    _config.reload()


def read_toml(path: Path):
    return tomllib.loads(path.read_text())


def write_keeping_mtime(path: Path, text: str) -> None:
    """Change the file's content but not its modification time."""
    before = path.stat()
    path.write_text(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


# paths and defaults


def test_paths_follow_the_environment(cfg):
    where = _config.paths()
    assert where.config_dir == cfg.config
    assert where.data_dir == cfg.data
    assert where.cache_dir == cfg.cache
    assert where.config_file == cfg.file
    assert where.pid_file == cfg.cache / "server.pid"


def test_defaults(cfg):
    assert _config.get_value("dispatcher.port") == 48008
    assert _config.get_value("dispatcher.address") == "localhost"
    assert _config.get_value("dispatcher.db_path") == str(cfg.data / "dispatcher.sqlite")
    assert _config.get_value("dispatcher.results_dir") == str(cfg.cache / "results")
    assert _config.get_value("sdk.auto_start") is True
    assert _config.get_value("executors") == {}


def test_reading_does_not_create_files(cfg):
    _config.get_value()
    assert not cfg.config.exists()


def test_get_value_without_key_is_everything(cfg):
    everything = _config.get_value()
    assert everything == _config.defaults()
    assert set(everything) == {"sdk", "dispatcher", "executors"}
    assert _config.get_value("dispatcher") == everything["dispatcher"]


def test_get_value_returns_a_copy(cfg):
    _config.get_value("dispatcher")["port"] = 1
    _config.load()["dispatcher"]["port"] = 2
    assert _config.get_value("dispatcher.port") == 48008


def test_public_get_config(cfg):
    assert ct.get_config("dispatcher.port") == 48008
    assert ct.get_config()["sdk"]["log_level"] == "info"


@pytest.mark.parametrize(
    ("key", "missing"),
    [("nothing", "nothing"), ("dispatcher.nope", "nope"), ("dispatcher.port.deeper", "deeper")],
)
def test_unknown_key_is_a_config_error(cfg, key, missing):
    with pytest.raises(ConfigError) as info:
        _config.get_value(key)
    assert f"'{key}'" in str(info.value)
    assert f"'{missing}'" in str(info.value)


# writing


def test_set_values_dict_form_persists(cfg):
    _config.set_values({"dispatcher.port": 5000, "sdk.log_level": "debug"})
    assert read_toml(cfg.file) == {"dispatcher": {"port": 5000}, "sdk": {"log_level": "debug"}}
    assert _config.get_value("dispatcher.port") == 5000
    assert _config.get_value("sdk.log_level") == "debug"
    assert _config.get_value("dispatcher.address") == "localhost"


def test_set_values_key_value_form_persists(cfg):
    _config.set_values("dispatcher.address", "0.0.0.0")
    assert read_toml(cfg.file) == {"dispatcher": {"address": "0.0.0.0"}}
    assert _config.get_value("dispatcher.address") == "0.0.0.0"


def test_set_values_with_a_section_merges(cfg):
    _config.set_values({"executors": {"local": {"workers": 2}}})
    _config.set_values("executors.local", {"log_stdout": "out.txt"})
    _config.set_values({"executors.dask.scheduler_address": "tcp://h:1"})
    assert read_toml(cfg.file)["executors"] == {
        "local": {"workers": 2, "log_stdout": "out.txt"},
        "dask": {"scheduler_address": "tcp://h:1"},
    }
    assert _config.get_value("executors.local.workers") == 2


def test_set_values_keeps_what_the_file_had(cfg):
    cfg.config.mkdir()
    cfg.file.write_text('[sdk]\nlog_level = "info"\n\n[custom]\nanswer = 42\n')
    _config.set_values("dispatcher.port", 6000)
    assert read_toml(cfg.file) == {
        "sdk": {"log_level": "info"},
        "custom": {"answer": 42},
        "dispatcher": {"port": 6000},
    }
    assert _config.get_value("custom.answer") == 42


def test_public_set_config(cfg):
    ct.set_config({"dispatcher.port": 7000})
    ct.set_config("sdk.auto_start", False)
    assert ct.get_config("dispatcher.port") == 7000
    assert ct.get_config("sdk.auto_start") is False
    assert _config.server_url() == "http://localhost:7000"


def test_a_write_leaves_no_temporary_file(cfg):
    for port in range(5000, 5005):
        _config.set_values("dispatcher.port", port)
    assert sorted(p.name for p in cfg.config.iterdir()) == ["covalent.conf"]
    assert _config.get_value("dispatcher.port") == 5004


def test_a_failed_write_changes_nothing(cfg):
    _config.set_values("dispatcher.port", 5000)
    before = cfg.file.read_bytes()
    with pytest.raises(ConfigError, match="TOML"):
        _config.set_values("sdk.thing", object())
    assert cfg.file.read_bytes() == before
    assert sorted(p.name for p in cfg.config.iterdir()) == ["covalent.conf"]


def test_an_interrupted_write_keeps_the_old_file(cfg, monkeypatch):
    _config.set_values("dispatcher.port", 5000)
    before = cfg.file.read_bytes()

    def crash(src, dst):
        assert Path(src).parent == cfg.config and Path(src).read_text().count("5001") == 1
        raise OSError("disk gone")

    with monkeypatch.context() as patch, pytest.raises(OSError, match="disk gone"):
        patch.setattr(_config.os, "replace", crash)
        _config.set_values("dispatcher.port", 5001)
    assert cfg.file.read_bytes() == before
    assert sorted(p.name for p in cfg.config.iterdir()) == ["covalent.conf"]


def test_setting_under_a_value_is_a_config_error(cfg):
    _config.set_values("dispatcher.port", 5000)
    with pytest.raises(ConfigError, match="'port' is a value"):
        _config.set_values("dispatcher.port.deeper", 1)
    assert read_toml(cfg.file) == {"dispatcher": {"port": 5000}}


# reading errors, reload, environment


def test_invalid_toml_is_a_config_error_naming_the_file(cfg):
    cfg.config.mkdir()
    cfg.file.write_text("[dispatcher\nport = ")
    with pytest.raises(ConfigError) as info:
        _config.get_value("dispatcher.port")
    assert str(cfg.file) in str(info.value)
    assert isinstance(info.value.__cause__, tomllib.TOMLDecodeError)
    with pytest.raises(ConfigError, match="not valid TOML"):
        _config.set_values("dispatcher.port", 1)


def test_a_changed_file_is_read_again(cfg):
    _config.set_values("dispatcher.port", 5001)
    assert _config.get_value("dispatcher.port") == 5001
    cfg.file.write_text("[dispatcher]\nport = 5002\n")
    stat = cfg.file.stat()
    os.utime(cfg.file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert _config.get_value("dispatcher.port") == 5002


def test_reload_forgets_what_was_read(cfg):
    _config.set_values("dispatcher.port", 5001)
    assert _config.get_value("dispatcher.port") == 5001
    write_keeping_mtime(cfg.file, "[dispatcher]\nport = 5002\n")
    # Same modification time: the cached read still answers...
    assert _config.get_value("dispatcher.port") == 5001
    # ...until the cache is dropped.
    ct.reload_config()
    assert _config.get_value("dispatcher.port") == 5002


def test_a_deleted_file_gives_the_defaults_again(cfg):
    _config.set_values("dispatcher.port", 5001)
    cfg.file.unlink()
    assert _config.get_value("dispatcher.port") == 48008


def test_environment_overrides_the_file(cfg, monkeypatch):
    _config.set_values("sdk.log_level", "debug")
    monkeypatch.setenv("COVALENT_LOG_LEVEL", "error")
    monkeypatch.setenv("COVALENT_DATABASE_URL", "postgresql://db/covalent")
    assert _config.get_value("sdk.log_level") == "error"
    assert _config.get_value("dispatcher.db_url") == "postgresql://db/covalent"
    assert read_toml(cfg.file) == {"sdk": {"log_level": "debug"}}


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        (None, "http://localhost:48008"),
        ("example.org:9", "http://example.org:9"),
        ("https://x.org/", "https://x.org"),
    ],
)
def test_server_url(cfg, addr, expected):
    assert _config.server_url(addr) == expected


def test_server_url_from_the_environment(cfg, monkeypatch):
    monkeypatch.setenv("COVALENT_SERVER_URL", "http://elsewhere:1234")
    assert _config.server_url() == "http://elsewhere:1234"


def test_get_config_with_a_list_of_keys_gives_a_dict(cfg):
    ct.set_config({"dispatcher.port": 48100, "sdk.log_level": "debug"})
    got = ct.get_config(["dispatcher.address", "dispatcher.port", "sdk.log_level"])
    assert got == {
        "dispatcher.address": "localhost",
        "dispatcher.port": 48100,
        "sdk.log_level": "debug",
    }
    with pytest.raises(ConfigError, match="dispatcher.nope"):
        ct.get_config(["dispatcher.port", "dispatcher.nope"])


# unsetting, checking and masking


def test_setting_none_removes_the_key_and_its_default_applies(cfg):
    ct.set_config("dispatcher.db_url", "postgresql://u:pw@127.0.0.1/db")
    ct.set_config("dispatcher.port", 1234)
    ct.set_config("dispatcher.db_url", None)
    assert "db_url" not in ct.get_config("dispatcher")
    assert ct.get_config("dispatcher.port") == 1234  # the rest of the section stays
    assert _config.unset_value("dispatcher.port") is True
    assert _config.unset_value("dispatcher.port") is False
    assert ct.get_config("dispatcher.port") == _config.DEFAULT_PORT
    assert "dispatcher" not in _config.file_values()  # an emptied section goes too


@pytest.mark.parametrize(
    ("key", "text", "expected"),
    [
        ("dispatcher.port", "8080", 8080),
        ("sdk.auto_start", "false", False),
        ("sdk.log_level", "debug", "debug"),
        ("dispatcher.db_url", "postgresql://u:p@h/d", "postgresql://u:p@h/d"),
        ("executors.dask.scheduler_address", '"tcp://127.0.0.1:8786"', "tcp://127.0.0.1:8786"),
        ("executors.local.workers", "4", 4),
    ],
)
def test_values_typed_on_a_command_line_are_parsed_and_checked(cfg, key, text, expected):
    assert _config.check_value(key, _config.parse_value(text)) == expected


@pytest.mark.parametrize(
    ("key", "text", "message"),
    [
        ("dispatcher.port", "lots", "dispatcher.port takes a whole number, not 'lots'"),
        ("sdk.auto_start", "maybe", "sdk.auto_start takes true or false"),
        ("dispatcher.prot", "1", "There is no config key 'dispatcher.prot'; the [dispatcher] keys"),
        ("server.port", "1", "keys start with sdk., dispatcher. or executors."),
        # the server refuses to start on an unknown level: refused when set, not at restart
        ("sdk.log_level", "LOUD", "sdk.log_level takes one of debug, info, warning"),
        ("sdk.log_level", "3", "sdk.log_level takes one of debug"),
        ("dispatcher.port", "99999", "dispatcher.port takes a port number from 1 to 65535"),
        ("dispatcher.port", "0", "dispatcher.port takes a port number from 1 to 65535, not 0"),
    ],
)
def test_bad_values_and_unknown_keys_are_config_errors(cfg, key, text, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        _config.check_value(key, _config.parse_value(text))


def test_secrets_are_masked_for_showing():
    url = "postgresql+psycopg://team:s3cret@db.example:5432/covalent"
    assert _config.mask_secrets(f"db={url} ok") == (
        "db=postgresql+psycopg://team:***@db.example:5432/covalent ok"
    )
    assert _config.mask_secrets("sqlite:////home/a/b.sqlite") == "sqlite:////home/a/b.sqlite"
    shown = _config.masked({"dispatcher": {"db_url": url, "token": "t0k", "port": 1}})
    assert shown == {
        "dispatcher": {
            "db_url": "postgresql+psycopg://team:***@db.example:5432/covalent",
            "token": "(set, hidden)",
            "port": 1,
        }
    }


def test_masking_a_long_text_does_not_hang():
    # a 100,000-letter error message took 7.8 s, on the server's event loop, per log line
    code = (
        "from covalent._config import mask_secrets as m\n"
        "t = 'a' * 2_000_000 + '://'\n"
        "assert m(t) == t\n"
        "u = ('x' * 60 + '://' + 'u' * 250 + ':' + 'p' * 500) * 2_000\n"
        "assert m(u) == u\n"
        "print(m('aaaa' * 1000 + 'postgresql://team:s3cret@db/c'))\n"
    )
    repo = Path(__file__).parents[1]
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=repo
    )  # quadratic, the first text alone would take an hour
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("postgresql://team:***@db/c")


def test_only_client_side_keys_take_effect_without_a_restart():
    assert not _config.needs_restart("sdk.log_level")
    assert _config.needs_restart("dispatcher.port")
    assert _config.needs_restart("executors.local.workers")
