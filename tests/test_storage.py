"""smar.storage: one object-store configuration, three engine views (no server needed)."""

from __future__ import annotations

import pytest

from smar.errors import InputRefused
from smar.storage import DEFAULT_CUSTOM_ENDPOINT_REGION, storage_settings_from_env

LOOPBACK = {
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9000/",
    "AWS_ACCESS_KEY_ID": "key",
    "AWS_SECRET_ACCESS_KEY": "secret",
    "AWS_REGION": "eu-west-1",
    "AWS_ALLOW_HTTP": "true",
}


def test_loopback_endpoint_maps_to_every_engine():
    settings = storage_settings_from_env(LOOPBACK)
    confs = settings.spark_hadoop_confs()
    assert confs["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert confs["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert confs["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert confs["spark.hadoop.fs.s3a.endpoint.region"] == "eu-west-1"
    assert confs["spark.hadoop.fs.s3a.access.key"] == "key"
    assert confs["spark.hadoop.fs.s3a.secret.key"] == "secret"
    assert confs["spark.hadoop.fs.s3a.aws.credentials.provider"].endswith("SimpleAWSCredentialsProvider")
    assert confs["spark.hadoop.fs.s3.impl"] == "org.apache.hadoop.fs.s3a.S3AFileSystem"

    assert settings.embedded_env() == {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
        "AWS_ALLOW_HTTP": "true",
        "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false",
        "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "key",
        "AWS_SECRET_ACCESS_KEY": "secret",
    }
    options = settings.delta_rs_storage_options()
    assert options["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9000"
    assert options["AWS_ALLOW_HTTP"] == "true"
    assert "AWS_S3_ALLOW_UNSAFE_RENAME" not in options  # delta-rs 1.x commits with conditional puts
    assert settings.pyarrow_s3_options() == {
        "endpoint_override": "http://127.0.0.1:9000",
        "force_virtual_addressing": False,
        "region": "eu-west-1",
        "access_key": "key",
        "secret_key": "secret",
    }


def test_s3_specific_endpoint_wins_and_region_defaults_for_custom_endpoints():
    settings = storage_settings_from_env(
        {"AWS_ENDPOINT_URL": "https://generic.example", "AWS_ENDPOINT_URL_S3": "https://s3.example"}
    )
    assert settings.s3.endpoint_url == "https://s3.example"
    assert settings.s3.region == DEFAULT_CUSTOM_ENDPOINT_REGION  # pysail needs one offline
    assert settings.s3.allow_http is False
    assert settings.spark_hadoop_confs()["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "true"


def test_http_endpoint_implies_allow_http_unless_refused():
    assert storage_settings_from_env({"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}).s3.allow_http
    with pytest.raises(InputRefused, match="AWS_ALLOW_HTTP is false"):
        storage_settings_from_env({"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ALLOW_HTTP": "false"})
    with pytest.raises(InputRefused, match="must be true or false"):
        storage_settings_from_env({"AWS_ALLOW_HTTP": "maybe"})


def test_bad_endpoint_and_half_credentials_are_refused():
    with pytest.raises(InputRefused, match="http\\(s\\)://host"):
        storage_settings_from_env({"AWS_ENDPOINT_URL": "127.0.0.1:9000"})
    with pytest.raises(InputRefused, match="both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        storage_settings_from_env({"AWS_ACCESS_KEY_ID": "key"})


def test_real_aws_passes_nothing_it_was_not_given():
    """No endpoint, no keys: every engine keeps its default chain (instance profile etc.)."""
    settings = storage_settings_from_env({"AWS_REGION": "us-west-2"})
    confs = settings.spark_hadoop_confs()
    assert not any(
        key.startswith("spark.hadoop.fs.s3a.endpoint") and key != "spark.hadoop.fs.s3a.endpoint.region" for key in confs
    )
    assert "spark.hadoop.fs.s3a.access.key" not in confs
    assert "spark.hadoop.fs.s3a.aws.credentials.provider" not in confs
    assert settings.embedded_env() == {"AWS_REGION": "us-west-2"}
    assert settings.delta_rs_storage_options() == {"AWS_REGION": "us-west-2"}
    assert storage_settings_from_env({}).embedded_env() == {}


def test_session_token_selects_temporary_credentials():
    settings = storage_settings_from_env({**LOOPBACK, "AWS_SESSION_TOKEN": "tok"})
    confs = settings.spark_hadoop_confs()
    assert confs["spark.hadoop.fs.s3a.session.token"] == "tok"
    assert confs["spark.hadoop.fs.s3a.aws.credentials.provider"].endswith("TemporaryAWSCredentialsProvider")
    assert settings.embedded_env()["AWS_SESSION_TOKEN"] == "tok"
    assert settings.pyarrow_s3_options()["session_token"] == "tok"


def test_gcs_and_azure_views():
    settings = storage_settings_from_env(
        {
            "GOOGLE_APPLICATION_CREDENTIALS": "/keys/sa.json",
            "AZURE_STORAGE_ACCOUNT_NAME": "acct",
            "AZURE_STORAGE_ACCOUNT_KEY": "k==",
        }
    )
    confs = settings.spark_hadoop_confs()
    assert confs["spark.hadoop.google.cloud.auth.service.account.json.keyfile"] == "/keys/sa.json"
    assert confs["spark.hadoop.fs.azure.account.key.acct.dfs.core.windows.net"] == "k=="
    assert settings.embedded_env() == {
        "GOOGLE_SERVICE_ACCOUNT": "/keys/sa.json",
        "AZURE_STORAGE_ACCOUNT_NAME": "acct",
        "AZURE_STORAGE_ACCOUNT_KEY": "k==",
    }
    options = settings.delta_rs_storage_options()
    assert options["google_service_account_path"] == "/keys/sa.json"
    assert options["AZURE_STORAGE_ACCOUNT_KEY"] == "k=="

    oauth = storage_settings_from_env(
        {
            "AZURE_STORAGE_ACCOUNT_NAME": "acct",
            "AZURE_CLIENT_ID": "id",
            "AZURE_CLIENT_SECRET": "s",
            "AZURE_TENANT_ID": "t",
        }
    ).spark_hadoop_confs()
    host = "acct.dfs.core.windows.net"
    assert oauth[f"spark.hadoop.fs.azure.account.auth.type.{host}"] == "OAuth"
    assert oauth[f"spark.hadoop.fs.azure.account.oauth2.client.endpoint.{host}"] == (
        "https://login.microsoftonline.com/t/oauth2/token"
    )


def test_reads_os_environ_by_default(monkeypatch):
    for key in list(__import__("os").environ):
        if key.startswith(("AWS_", "GOOGLE_", "AZURE_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5")
    assert storage_settings_from_env().s3.endpoint_url == "http://127.0.0.1:5"
