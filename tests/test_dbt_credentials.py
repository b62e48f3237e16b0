"""dbt takes every credential form its warehouse's loader takes, and chooses as it does.

transform/profiles.yml reads the loaders' own variables (docs/warehouses.md#dbt-credentials).
For each set of variables, tests/emulators/dbt_credentials_probe.py renders the
profile and opens a connection with dbt's own code, inside the dbt utility's
environment Meltano installed, and says what it got. Each Snowflake form logs in
to fakesnow and each BigQuery form runs ``select 1`` on bqemulator. Neither
emulator checks credentials, but the clients still build them from what dbt gave:
a key-pair login signs a JWT with the key, an OAuth login sends the token, and a
Google service account signs a token request, answered by the emulator's local
token endpoint. That Meltano gives dbt the same variables as the loader is
tests/test_models_config.py's.

The keys are throwaway ones (tests/emulators/throwaway_credentials.py).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import subprocess
import typing as t
from dataclasses import dataclass

import pytest
import yaml

from tests.emulated_warehouses import EMULATORS, throwaway_service_account
from tests.warehouses import ROOT

if t.TYPE_CHECKING:
    from pathlib import Path

    from tests.emulated_warehouses import BigQueryEmulator, FakeSnowflake

PROFILES = ROOT / "transform"
PROBE = EMULATORS / "dbt_credentials_probe.py"
PROBE_TIMEOUT = 180
"""Seconds one probe may take: dbt's import and, on Snowflake, a login per form."""
PASSPHRASE = "throwaway-passphrase"  # noqa: S105 - of a throwaway key
SNOWFLAKE_CREDENTIALS = ("PASSWORD", "PRIVATE_KEY", "PRIVATE_KEY_PATH", "OAUTH_ACCESS_TOKEN")
"""target-snowflake's four credential variables (TARGET_SNOWFLAKE_*): it takes exactly one."""


def _dbt_python(kind: str) -> Path:
    return ROOT / ".meltano" / "utilities" / f"dbt-{kind}" / "venv" / "bin" / "python"


def _probe(
    kind: str,
    cases: dict[str, dict[str, str]],
    env: dict[str, str],
    connect: dict[str, t.Any] | None = None,
) -> dict[str, dict[str, t.Any]]:
    """What dbt builds from transform/profiles.yml for each case's variables."""
    done = subprocess.run(
        [str(_dbt_python(kind)), str(PROBE), str(PROFILES), kind],
        input=json.dumps({"cases": cases, "connect": connect}),
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT,
        check=False,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith(("TARGET_", "DBT_"))},
            **env,
        },
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout)
    assert isinstance(answers, dict)
    return answers


def _body(pem: str) -> str:
    return "".join(line for line in pem.splitlines() if not line.startswith("-----"))


@dataclass(frozen=True)
class Key:
    """One throwaway RSA key, in every form a variable can carry it."""

    folder: Path
    pem: str
    encrypted_pem: str

    @property
    def path(self) -> str:
        return str(self.folder / "service-account.pem")

    @property
    def encrypted_path(self) -> str:
        return str(self.folder / "service-account.encrypted.pem")

    @property
    def der_base64(self) -> str:
        """The key as base64 of its DER bytes: the PEM's body on one line."""
        return _body(self.pem)

    @property
    def encrypted_der_base64(self) -> str:
        return _body(self.encrypted_pem)

    @property
    def der_sha256(self) -> str:
        """What the connector must be handed, whatever the form: the key's unencrypted DER."""
        return hashlib.sha256(base64.b64decode(self.der_base64)).hexdigest()


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Key:
    folder = tmp_path_factory.mktemp("keys")
    subprocess.run(
        [
            str(_dbt_python("snowflake")),
            str(EMULATORS / "throwaway_credentials.py"),
            str(folder),
            "localhost",
            PASSPHRASE,
        ],
        check=True,
    )
    return Key(
        folder,
        (folder / "service-account.pem").read_text(),
        (folder / "service-account.encrypted.pem").read_text(),
    )


def _snowflake_forms(key: Key) -> dict[str, tuple[dict[str, str], dict[str, t.Any]]]:
    """Each form: its variables, and what dbt hands the connector and logs in with."""
    nothing = {"password": None, "authenticator": None, "token": None, "private_key_sha256": None}
    with_key = {**nothing, "private_key_sha256": key.der_sha256}
    return {
        "password": (
            {"TARGET_SNOWFLAKE_PASSWORD": "throwaway-password"},
            {**nothing, "password": "throwaway-password", "auth": "AuthByDefault"},
        ),
        # As a secret store or a YAML block may give it: a blank line first.
        "private key, PEM": (
            {"TARGET_SNOWFLAKE_PRIVATE_KEY": "\n" + key.pem},
            {**with_key, "auth": "AuthByKeyPair"},
        ),
        "private key, base64 of the DER": (
            {"TARGET_SNOWFLAKE_PRIVATE_KEY": key.der_base64},
            {**with_key, "auth": "AuthByKeyPair"},
        ),
        "private key, encrypted PEM": (
            {
                "TARGET_SNOWFLAKE_PRIVATE_KEY": key.encrypted_pem,
                "TARGET_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": PASSPHRASE,
            },
            {**with_key, "auth": "AuthByKeyPair"},
        ),
        "private key, base64 of the encrypted DER": (
            {
                "TARGET_SNOWFLAKE_PRIVATE_KEY": key.encrypted_der_base64,
                "TARGET_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": PASSPHRASE,
            },
            {**with_key, "auth": "AuthByKeyPair"},
        ),
        "private key file": (
            {"TARGET_SNOWFLAKE_PRIVATE_KEY_PATH": key.path},
            {**with_key, "auth": "AuthByKeyPair"},
        ),
        "private key file, encrypted": (
            {
                "TARGET_SNOWFLAKE_PRIVATE_KEY_PATH": key.encrypted_path,
                "TARGET_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": PASSPHRASE,
            },
            {**with_key, "auth": "AuthByKeyPair"},
        ),
        "OAuth access token": (
            {"TARGET_SNOWFLAKE_OAUTH_ACCESS_TOKEN": "throwaway-token"},
            {
                **nothing,
                "authenticator": "oauth",
                "token": "throwaway-token",
                "auth": "AuthByOAuth",
            },
        ),
    }


@pytest.mark.e2e
@pytest.mark.usefixtures("meltano_plugins")
def test_dbt_snowflake_logs_in_with_each_form_and_refuses_two(
    key: Key, snowflake: FakeSnowflake
) -> None:
    forms = _snowflake_forms(key)
    one_of_each = {name: variables for name, (variables, _) in forms.items()}
    values = {
        "PASSWORD": "throwaway-password",
        "PRIVATE_KEY": key.pem,
        "PRIVATE_KEY_PATH": key.path,
        "OAUTH_ACCESS_TOKEN": "throwaway-token",
    }
    # target-snowflake refuses any two of its four, even one set to an empty string.
    pairs = {
        f"{first} and {second}": {
            f"TARGET_SNOWFLAKE_{first}": values[first],
            f"TARGET_SNOWFLAKE_{second}": values[second],
        }
        for first, second in itertools.combinations(SNOWFLAKE_CREDENTIALS, 2)
    }
    refused = {
        **pairs,
        "an empty PASSWORD and PRIVATE_KEY_PATH": {
            "TARGET_SNOWFLAKE_PASSWORD": "",
            "TARGET_SNOWFLAKE_PRIVATE_KEY_PATH": key.path,
        },
        "base64 of the PEM": {
            "TARGET_SNOWFLAKE_PRIVATE_KEY": base64.b64encode(key.pem.encode()).decode()
        },
    }
    answers = _probe(
        "snowflake",
        {**one_of_each, **refused},
        {
            "TARGET_SNOWFLAKE_ACCOUNT": "emulated",
            "TARGET_SNOWFLAKE_USER": "loader",
            "TARGET_SNOWFLAKE_DATABASE": snowflake.DATABASE,
            "TARGET_SNOWFLAKE_WAREHOUSE": "LOADING",
            "TARGET_SNOWFLAKE_DEFAULT_TARGET_SCHEMA": "kaleyra",
        },
        connect={"port": snowflake.port},
    )

    got = {
        name: {
            **{k: v for k, v in answers[name].items() if k != "connected"},
            "auth": answers[name].get("connected", {}).get("auth"),
        }
        for name in forms
    }
    assert got == {name: expected for name, (_, expected) in forms.items()}
    assert all(answers[name]["connected"]["select 1"] == 1 for name in forms)
    for name in pairs:
        first, second = name.split(" and ")
        assert answers[name] == {
            "error": "EnvVarMissingError: Parsing Error\n  Env var required but not provided: "
            f"'one Snowflake credential variable, not TARGET_SNOWFLAKE_{first} and "
            f"TARGET_SNOWFLAKE_{second}'"
        }, name
    empty_password = answers["an empty PASSWORD and PRIVATE_KEY_PATH"]["error"]
    assert "not TARGET_SNOWFLAKE_PASSWORD and TARGET_SNOWFLAKE_PRIVATE_KEY_PATH'" in empty_password
    base64_pem = answers["base64 of the PEM"]["error"]
    assert "'TARGET_SNOWFLAKE_PRIVATE_KEY as PEM text or base64 of the DER key, not " in base64_pem


@pytest.mark.e2e
@pytest.mark.usefixtures("meltano_plugins")
def test_dbt_bigquery_takes_the_key_file_then_the_key_json_then_adc(
    key: Key, bigquery: BigQueryEmulator
) -> None:
    # One service account per source, told apart by their e-mail addresses.
    service_accounts = {
        source: throwaway_service_account(
            key.folder / f"{source}.json", key.pem, f"{source}-project", bigquery.tokens.url
        )
        for source in ("adc", "file", "json")
    }
    path, json_text = str(service_accounts["file"]), service_accounts["json"].read_text()
    emulator = {
        name: value
        for name, value in bigquery.env("kaleyra").items()
        if name != "TARGET_BIGQUERY_CREDENTIALS_PATH"
    }
    answers = _probe(
        "bigquery",
        {
            "neither": {},
            "key file": {"TARGET_BIGQUERY_CREDENTIALS_PATH": path},
            "key JSON": {"TARGET_BIGQUERY_CREDENTIALS_JSON": json_text},
            "both": {
                "TARGET_BIGQUERY_CREDENTIALS_PATH": path,
                "TARGET_BIGQUERY_CREDENTIALS_JSON": json_text,
            },
            "key JSON, empty path": {
                "TARGET_BIGQUERY_CREDENTIALS_PATH": "",
                "TARGET_BIGQUERY_CREDENTIALS_JSON": json_text,
            },
            "key file, JSON not JSON": {
                "TARGET_BIGQUERY_CREDENTIALS_PATH": path,
                "TARGET_BIGQUERY_CREDENTIALS_JSON": "not JSON",
            },
            "JSON not JSON": {"TARGET_BIGQUERY_CREDENTIALS_JSON": "not JSON"},
            "JSON not an object": {"TARGET_BIGQUERY_CREDENTIALS_JSON": '["a key"]'},
        },
        # Application Default Credentials: this key file (never a metadata server:
        # the emulator's variables point google-auth's look-up at 127.0.0.1:9).
        {**emulator, "GOOGLE_APPLICATION_CREDENTIALS": str(service_accounts["adc"])},
        connect={"emulator_host": bigquery.url},
    )

    def signed_in(method: str, source: str, *, keyfile: str | None = None) -> dict[str, t.Any]:
        email = f"loader@{source}-project.iam.gserviceaccount.com"
        return {
            "method": method,
            "keyfile": keyfile,
            "keyfile_json_client_email": email if method == "service-account-json" else None,
            "google_credentials": "google.oauth2.service_account.Credentials",
            "service_account_email": email,
            "token": "emulator",  # from the emulator's token endpoint, the key's token_uri
            "connected": {"select 1": 1},
        }

    from_file = signed_in("service-account", "file", keyfile=path)
    from_json = signed_in("service-account-json", "json")
    not_an_object = {
        "error": "EnvVarMissingError: Parsing Error\n  Env var required but not provided: "
        "'TARGET_BIGQUERY_CREDENTIALS_JSON holding a JSON object (a service-account key)'"
    }
    assert answers == {
        "neither": signed_in("oauth", "adc"),
        "key file": from_file,
        "key JSON": from_json,
        "both": from_file,
        "key JSON, empty path": from_json,
        "key file, JSON not JSON": from_file,
        "JSON not JSON": not_an_object,
        "JSON not an object": not_an_object,
    }


def test_the_fakesnow_profile_is_the_projects_plus_fakesnows_address() -> None:
    """The Snowflake tests' dbt profile (tests/emulators/dbt_snowflake) adds only an address."""

    def snowflake_output(folder: Path) -> dict[str, t.Any]:
        profile = yaml.safe_load((folder / "profiles.yml").read_text())
        output = profile["kaleyra_rcs"]["outputs"]["snowflake"]
        assert isinstance(output, dict)
        return output

    project, tests = snowflake_output(PROFILES), snowflake_output(EMULATORS / "dbt_snowflake")

    assert {name: value for name, value in tests.items() if name in project} == project
    assert set(tests) - set(project) == {
        "host",
        "port",
        "protocol",
        "connect_retries",
        "connect_timeout",
    }
