"""One object-store configuration, derived once from the standard environment variables, in the
shape each engine wants (docs/operations.md, "Object storage").

    settings = storage_settings_from_env()        # reads os.environ once
    settings.spark_hadoop_confs()                 # classic Spark: spark.hadoop.fs.s3a.* and co.
    settings.embedded_env()                       # pysail: the process environment it reads
    settings.delta_rs_storage_options()           # deltalake: storage_options
    settings.pyarrow_s3_options()                 # pyarrow.fs.S3FileSystem(**...)

Variables read (anything unset is simply not passed on, so real clouds keep their default
credential chains: instance profiles, workload identity, managed identity):

* S3: `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` / `AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`,
  `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` / `AWS_DEFAULT_REGION`,
  `AWS_ALLOW_HTTP`, `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`.
* GCS: `GOOGLE_APPLICATION_CREDENTIALS` / `GOOGLE_SERVICE_ACCOUNT` (a key file path).
* Azure: `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`, `AZURE_STORAGE_SAS_TOKEN`,
  `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`, `AZURE_TENANT_ID`.

What was verified against an S3-compatible server on loopback (tests/integration, moto 5.2.5):
pysail 0.7.2, deltalake 1.6.6, pyarrow.fs and classic Spark 4.2 with hadoop-aws 3.5.0 all read
and write `s3://bucket/...` with these views. The GCS and Azure mappings follow each library's
documented keys and are not tested here (no emulator is installed; classic Spark would also need
the gcs-connector or hadoop-azure jars, which scripts/spark_jars.sh does not fetch).

Findings the mappings encode:

* pysail reads the process environment (object_store's `AmazonS3Builder::from_env` plus the AWS
  SDK's default chain), not Spark confs. It needs `AWS_ALLOW_HTTP=true` for an http endpoint
  ("URL scheme is not allowed" otherwise) and a region: without one it asks AWS for the bucket's
  region and fails offline. It reads the variables when a session first touches a bucket and
  keeps that store for the session's life, so set them before the engine's first S3 access.
* Path-style addressing is object_store's default whenever an endpoint is set; virtual-hosted
  style (`AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`) fails against a loopback endpoint.
* deltalake 1.x commits to S3 with conditional puts (`If-None-Match: *`), so concurrent delta-rs
  writers are safe without a locking provider; `AWS_S3_ALLOW_UNSAFE_RENAME` and the DynamoDB
  locking provider are not needed (and not set). Classic Spark's delta-spark uses
  S3SingleDriverLogStore, which is safe only with one writing driver per table at a time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from smar.errors import InputRefused

# A region is mandatory for pysail with a custom endpoint (see the module docstring); this is
# what every S3-compatible server accepts when nothing else is said.
DEFAULT_CUSTOM_ENDPOINT_REGION = "us-east-1"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _flag(name: str, value: str | None, default: bool) -> bool:
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InputRefused(f"${name} must be true or false, got {value!r}")


def _first(environ: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = environ.get(name)
        if value:
            return value
    return None


@dataclass(frozen=True)
class S3Settings:
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    region: str | None = None
    allow_http: bool = False
    virtual_hosted_style: bool = False

    def __post_init__(self) -> None:
        if self.endpoint_url is not None:
            parts = urlsplit(self.endpoint_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise InputRefused(f"S3 endpoint must look like http(s)://host[:port], got {self.endpoint_url!r}")
            if parts.scheme == "http" and not self.allow_http:
                raise InputRefused(f"S3 endpoint {self.endpoint_url} is plain http but AWS_ALLOW_HTTP is false")
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise InputRefused("set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither")

    @property
    def uses_ssl(self) -> bool:
        return self.endpoint_url is None or self.endpoint_url.startswith("https://")


@dataclass(frozen=True)
class GcsSettings:
    service_account_path: str | None = None


@dataclass(frozen=True)
class AzureSettings:
    account_name: str | None = None
    account_key: str | None = None
    sas_token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    tenant_id: str | None = None


@dataclass(frozen=True)
class StorageSettings:
    """Object-store settings for every engine, derived once from the environment."""

    s3: S3Settings = S3Settings()
    gcs: GcsSettings = GcsSettings()
    azure: AzureSettings = AzureSettings()

    # ---- classic Spark (hadoop-aws, gcs-connector, hadoop-azure) -------------------------

    def spark_hadoop_confs(self) -> dict[str, str]:
        """`spark.hadoop.*` confs for a classic SparkSession / `spark-submit --conf`.

        `s3://` is mapped to S3A too, so the same URIs work on every engine (pysail and delta-rs
        accept both `s3://` and `s3a://`).
        """
        s3 = self.s3
        confs: dict[str, str] = {
            "spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
            "spark.hadoop.fs.AbstractFileSystem.s3.impl": "org.apache.hadoop.fs.s3a.S3A",
        }
        if s3.endpoint_url:
            confs["spark.hadoop.fs.s3a.endpoint"] = s3.endpoint_url
            confs["spark.hadoop.fs.s3a.path.style.access"] = str(not s3.virtual_hosted_style).lower()
            confs["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(s3.uses_ssl).lower()
        if s3.region:
            confs["spark.hadoop.fs.s3a.endpoint.region"] = s3.region
        if s3.access_key_id and s3.secret_access_key:
            confs["spark.hadoop.fs.s3a.access.key"] = s3.access_key_id
            confs["spark.hadoop.fs.s3a.secret.key"] = s3.secret_access_key
            if s3.session_token:
                confs["spark.hadoop.fs.s3a.session.token"] = s3.session_token
                confs["spark.hadoop.fs.s3a.aws.credentials.provider"] = (
                    "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"
                )
            else:
                confs["spark.hadoop.fs.s3a.aws.credentials.provider"] = (
                    "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
                )
        if self.gcs.service_account_path:
            confs["spark.hadoop.fs.gs.impl"] = "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFileSystem"
            confs["spark.hadoop.google.cloud.auth.type"] = "SERVICE_ACCOUNT_JSON_KEYFILE"
            confs["spark.hadoop.google.cloud.auth.service.account.json.keyfile"] = self.gcs.service_account_path
        az = self.azure
        if az.account_name:
            host = f"{az.account_name}.dfs.core.windows.net"
            if az.account_key:
                confs[f"spark.hadoop.fs.azure.account.key.{host}"] = az.account_key
            elif az.sas_token:
                confs[f"spark.hadoop.fs.azure.account.auth.type.{host}"] = "SAS"
                confs[f"spark.hadoop.fs.azure.sas.fixed.token.{host}"] = az.sas_token
            elif az.client_id and az.client_secret and az.tenant_id:
                confs[f"spark.hadoop.fs.azure.account.auth.type.{host}"] = "OAuth"
                confs[f"spark.hadoop.fs.azure.account.oauth.provider.type.{host}"] = (
                    "org.apache.hadoop.fs.azurebfs.oauth2.ClientCredsTokenProvider"
                )
                confs[f"spark.hadoop.fs.azure.account.oauth2.client.id.{host}"] = az.client_id
                confs[f"spark.hadoop.fs.azure.account.oauth2.client.secret.{host}"] = az.client_secret
                confs[f"spark.hadoop.fs.azure.account.oauth2.client.endpoint.{host}"] = (
                    f"https://login.microsoftonline.com/{az.tenant_id}/oauth2/token"
                )
        return confs

    # ---- the embedded engine (pysail) -------------------------------------------------------

    def embedded_env(self) -> dict[str, str]:
        """Environment variables for the process that runs pysail (it reads no Spark confs).

        Apply them to `os.environ` before the engine first touches a bucket.
        """
        env: dict[str, str] = {}
        s3 = self.s3
        if s3.endpoint_url:
            env["AWS_ENDPOINT_URL"] = s3.endpoint_url
            env["AWS_ALLOW_HTTP"] = str(s3.allow_http).lower()
            env["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] = str(s3.virtual_hosted_style).lower()
        if s3.region:
            env["AWS_REGION"] = s3.region
        if s3.access_key_id and s3.secret_access_key:
            env["AWS_ACCESS_KEY_ID"] = s3.access_key_id
            env["AWS_SECRET_ACCESS_KEY"] = s3.secret_access_key
            if s3.session_token:
                env["AWS_SESSION_TOKEN"] = s3.session_token
        if self.gcs.service_account_path:
            env["GOOGLE_SERVICE_ACCOUNT"] = self.gcs.service_account_path
        env.update(self._azure_env())
        return env

    def _azure_env(self) -> dict[str, str]:
        az = self.azure
        pairs = {
            "AZURE_STORAGE_ACCOUNT_NAME": az.account_name,
            "AZURE_STORAGE_ACCOUNT_KEY": az.account_key,
            "AZURE_STORAGE_SAS_TOKEN": az.sas_token,
            "AZURE_CLIENT_ID": az.client_id,
            "AZURE_CLIENT_SECRET": az.client_secret,
            "AZURE_TENANT_ID": az.tenant_id,
        }
        return {key: value for key, value in pairs.items() if value}

    # ---- delta-rs ------------------------------------------------------------------------------

    def delta_rs_storage_options(self) -> dict[str, str]:
        """`storage_options` for deltalake's table readers and `write_deltalake(...)`."""
        options = {key: value for key, value in self.embedded_env().items() if not key.startswith("GOOGLE_")}
        if self.gcs.service_account_path:
            options["google_service_account_path"] = self.gcs.service_account_path
        return options

    # ---- pyarrow.fs (everything that is not a table) ----------------------------------------

    def pyarrow_s3_options(self) -> dict[str, object]:
        """Keyword arguments for `pyarrow.fs.S3FileSystem`."""
        s3 = self.s3
        options: dict[str, object] = {}
        if s3.endpoint_url:
            options["endpoint_override"] = s3.endpoint_url  # its scheme selects http or https
            options["force_virtual_addressing"] = s3.virtual_hosted_style
        if s3.region:
            options["region"] = s3.region
        if s3.access_key_id and s3.secret_access_key:
            options["access_key"] = s3.access_key_id
            options["secret_key"] = s3.secret_access_key
            if s3.session_token:
                options["session_token"] = s3.session_token
        return options


def storage_settings_from_env(environ: Mapping[str, str] | None = None) -> StorageSettings:
    """Read the standard variables once (from `environ`, default `os.environ`)."""
    env = os.environ if environ is None else environ
    endpoint = _first(env, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT")
    endpoint = endpoint.rstrip("/") if endpoint else None
    region = _first(env, "AWS_REGION", "AWS_DEFAULT_REGION")
    if endpoint and not region:
        region = DEFAULT_CUSTOM_ENDPOINT_REGION
    allow_http = _flag(
        "AWS_ALLOW_HTTP",
        env.get("AWS_ALLOW_HTTP"),
        default=bool(endpoint and endpoint.startswith("http://")),
    )
    s3 = S3Settings(
        endpoint_url=endpoint,
        access_key_id=_first(env, "AWS_ACCESS_KEY_ID"),
        secret_access_key=_first(env, "AWS_SECRET_ACCESS_KEY"),
        session_token=_first(env, "AWS_SESSION_TOKEN"),
        region=region,
        allow_http=allow_http,
        virtual_hosted_style=_flag(
            "AWS_VIRTUAL_HOSTED_STYLE_REQUEST", env.get("AWS_VIRTUAL_HOSTED_STYLE_REQUEST"), False
        ),
    )
    gcs = GcsSettings(service_account_path=_first(env, "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_SERVICE_ACCOUNT"))
    azure = AzureSettings(
        account_name=_first(env, "AZURE_STORAGE_ACCOUNT_NAME"),
        account_key=_first(env, "AZURE_STORAGE_ACCOUNT_KEY"),
        sas_token=_first(env, "AZURE_STORAGE_SAS_TOKEN"),
        client_id=_first(env, "AZURE_CLIENT_ID"),
        client_secret=_first(env, "AZURE_CLIENT_SECRET"),
        tenant_id=_first(env, "AZURE_TENANT_ID"),
    )
    return StorageSettings(s3=s3, gcs=gcs, azure=azure)
