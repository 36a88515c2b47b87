"""Executor settings that hold secrets are masked wherever they are shown."""

from covalent._wire.secrets import MASK, is_secret, mask_manifest, mask_settings


def test_names_that_say_secret_are_secret_and_paths_are_not():
    for name in ("password", "db_password", "aws_secret_access_key", "api_token", "apikey"):
        assert is_secret(name), name
    for name in ("ssh_key_file", "known_hosts", "username", "token_path", "hostname"):
        assert not is_secret(name), name
    assert is_secret("license", declared={"license"})


def test_env_values_and_secret_settings_are_masked_empty_ones_kept():
    settings = {
        "env": {"API_KEY": "abc", "HOME": "/x"},
        "password": "hunter2",
        "token": "",
        "workdir": "/w",
    }
    shown = mask_settings(settings)
    assert shown == {
        "env": {"API_KEY": MASK, "HOME": MASK},
        "password": MASK,
        "token": "",
        "workdir": "/w",
    }
    assert settings["password"] == "hunter2"  # the original is untouched


def test_a_manifest_is_masked_node_by_node():
    manifest = {
        "nodes": [
            {"id": 0, "kind": "parameter", "value": "d"},
            {"id": 1, "executor": {"name": "local", "attributes": {"env": {"K": "v"}}}},
        ]
    }
    shown = mask_manifest(manifest)
    assert shown["nodes"][1]["executor"]["attributes"]["env"] == {"K": MASK}
    assert manifest["nodes"][1]["executor"]["attributes"]["env"] == {"K": "v"}
    assert shown["nodes"][0] == manifest["nodes"][0]


def test_a_plugin_declares_its_own_secrets():
    from covalent._wire.secrets import declared_secrets, mask_spec

    class Plugin:
        class cls:  # noqa: N801  (a stand-in for an executor class)
            SECRET_SETTINGS = ("license",)

    declared = declared_secrets({"vendor": Plugin})
    spec = {"name": "vendor", "attributes": {"license": "L-1", "nodes": 4}}
    assert mask_spec(spec, declared)["attributes"] == {"license": MASK, "nodes": 4}
    assert mask_spec({**spec, "name": "other"}, declared)["attributes"]["license"] == "L-1"
