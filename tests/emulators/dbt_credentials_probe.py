"""What dbt makes of a profile's credentials, for each set of variables: dbt's own code.

Runs inside a dbt utility's environment (``.meltano/utilities/dbt-<warehouse>/venv``)
for tests/test_dbt_credentials.py::

    python dbt_credentials_probe.py PROFILES_DIR TARGET < request.json > answers.json

The request is ``{"cases": {name: {variable: value}}, "connect": {...} or null}``.
For each case, with this process's environment plus the case's variables, the
profile ``kaleyra_rcs`` is rendered and its credentials built as ``dbt`` does
(``Profile.from_raw_profiles``, which loads the adapter). Then:

* Snowflake: the arguments dbt-snowflake hands ``snowflake.connector.connect``
  (``auth_args()``: it decodes a private key there). With ``connect``
  (``{"port"}`` of a fakesnow server on 127.0.0.1), dbt-snowflake's connection
  manager opens a connection there, runs ``select 1``, and the connector's
  authenticator class is reported: fakesnow checks no credentials, but the connector builds
  them (a key-pair login signs a JWT with the key).
* BigQuery: dbt-bigquery's connection manager opens its client, and the client's
  Google credentials are refreshed: a service account's signs a token request
  with its key and sends it to the key's ``token_uri`` (a local endpoint in the
  tests); Application Default Credentials are found as google-auth finds them.
  With ``connect`` (``{"emulator_host"}``, a bqemulator's URL), the client then
  runs ``select 1`` there.

The answer per case is what came out, or ``{"error": ...}`` with dbt's message.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import typing as t
from argparse import Namespace

from dbt.adapters.contracts.connection import Connection
from dbt.adapters.factory import FACTORY
from dbt.config.profile import Profile, read_profile
from dbt.config.renderer import ProfileRenderer
from dbt.flags import set_from_args
from dbt_common.context import set_invocation_context

PROFILE = "kaleyra_rcs"


def _opened(credentials: t.Any) -> t.Any:
    """A connection opened by the adapter's own connection manager."""
    manager = FACTORY.get_plugin_by_name(credentials.type).adapter.ConnectionManager
    return manager.open(Connection(credentials.type, "probe", credentials)).handle


def _snowflake(credentials: t.Any, connect: dict[str, t.Any] | None) -> dict[str, t.Any]:
    arguments = credentials.auth_args()
    key = arguments.get("private_key")
    found = {
        "password": arguments.get("password"),
        "authenticator": arguments.get("authenticator"),
        "token": arguments.get("token"),
        "private_key_sha256": hashlib.sha256(key).hexdigest() if key else None,
    }
    if connect:
        emulated = dataclasses.replace(
            credentials,
            host="127.0.0.1",
            port=connect["port"],
            protocol="http",
            connect_retries=0,
            connect_timeout=30,
        )
        handle = _opened(emulated)
        try:
            ((one,),) = handle.cursor().execute("select 1").fetchall()
            found["connected"] = {"select 1": one, "auth": type(handle.auth_class).__name__}
        finally:
            handle.close()
    return found


def _bigquery(credentials: t.Any, connect: dict[str, t.Any] | None) -> dict[str, t.Any]:
    from google.auth.transport.requests import Request  # noqa: PLC0415 - dbt-bigquery's only

    if connect:  # google-cloud-bigquery's own variable for an emulator
        os.environ["BIGQUERY_EMULATOR_HOST"] = connect["emulator_host"]
    keyfile_json = credentials.keyfile_json or {}
    client = _opened(credentials)
    google = client._credentials  # the client's own credentials
    google.refresh(Request())
    found = {
        "method": str(credentials.method),
        "keyfile": credentials.keyfile or None,
        "keyfile_json_client_email": keyfile_json.get("client_email"),
        "google_credentials": type(google).__module__ + "." + type(google).__name__,
        "service_account_email": getattr(google, "service_account_email", None),
        "token": google.token,
    }
    if connect:
        ((one,),) = client.query("select 1").result()
        found["connected"] = {"select 1": one}
    return found


def answer(raw: dict[str, t.Any], target: str, variables: dict[str, str], connect: t.Any) -> t.Any:
    """What dbt builds for ``target`` with these variables set, or its error."""
    set_invocation_context({**os.environ, **variables})
    try:
        credentials = Profile.from_raw_profiles(
            raw, PROFILE, ProfileRenderer({}), target_override=target
        ).credentials
        if credentials.type == "snowflake":
            return _snowflake(credentials, connect)
        return _bigquery(credentials, connect)
    except Exception as error:  # noqa: BLE001 - the error is the answer
        return {"error": f"{type(error).__name__}: {error}"}


def main() -> None:
    """Answer every case of the request on stdin, as one JSON object on stdout."""
    profiles_dir, target = sys.argv[1:3]
    request = json.load(sys.stdin)
    set_from_args(Namespace(), None)
    raw = read_profile(profiles_dir)
    answers = {
        name: answer(raw, target, variables, request.get("connect"))
        for name, variables in request["cases"].items()
    }
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()
