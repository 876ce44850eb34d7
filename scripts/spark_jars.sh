#!/usr/bin/env bash
# Resolves, once per machine, the jars classic Spark needs for Delta tables on S3, with Spark's
# own resolver (Ivy, as `--packages` does), into a cache that every later `--packages` run of
# the same coordinates resolves from without downloading. Idempotent.
#
#   SMAR_CACHE    cache root (default ~/.cache/smar); everything goes to $SMAR_CACHE/jars
#   SPARK_SUBMIT  spark-submit to use (default: the one in the project's .venv)
#
# It writes, under $SMAR_CACHE/jars:
#   ivysettings.xml   Maven Central only (see below)
#   spark-jars.conf   the spark.jars.* settings that resolved them, one `key=value` a line
#   spark-submit.conf what every spark-submit of the local cluster passes (`--conf key=value`;
#                     tests/integration/spark_cluster.py reads it): the same `--packages`, except
#                     the 690 MB AWS SDK bundle, which is on the nodes' classpath instead
#                     (spark.driver/executor.extraClassPath to this machine's copy), as a platform
#                     (EMR, Dataproc, an image) provides it: with --packages every executor of
#                     every application copied it into its work folder first (about 10-20 s and
#                     0.7 GB of disk per executor per job, measured)
#   jars.txt          the resolved jars, comma-separated, for `--jars` instead of `--packages`
#   ivy/              Ivy's cache and the retrieved jars
#
# Why these coordinates:
#   * delta-spark: pip's delta-spark 4.4.1 names `io.delta:delta-spark_<spark major.minor>_2.13`
#     (delta/pip_utils.py), but Maven Central serves only 4.4.0 of `delta-spark_4.2_2.13` (and of
#     `delta-spark_2.13`, also built against Spark 4.2.0); 4.4.1 is not there. So 4.4.0.
#   * hadoop-aws must match the hadoop-client-api jar that pyspark ships (3.5.0 for Spark 4.2);
#     it pulls the AWS SDK v2 `bundle` (about 690 MB).
#   * delta-spark 4.4 depends on delta-kernel, which pulls an older Hadoop client, Parquet,
#     Jackson, log4j and others that Spark already ships: excluded, so that only Spark's copies
#     are on the classpath (and 50 MB less is shipped to executors).
# Why ivysettings.xml: Spark's default Ivy chain looks in ~/.m2 first, and a ~/.m2 holding only
# a POM (left by `mvn dependency:get ...:pom`) makes `--packages` fail with "download failed";
# Maven Central alone avoids that and is exactly what `mvn` here resolves from.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cache="${SMAR_CACHE:-$HOME/.cache/smar}/jars"
spark_submit="${SPARK_SUBMIT:-$here/.venv/bin/spark-submit}"
python_bin="$(dirname "$spark_submit")/python"
[ -x "$python_bin" ] || python_bin="$(command -v python3)"

spark_home="$("$python_bin" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
hadoop_api="$(ls "$spark_home"/jars/hadoop-client-api-*.jar | head -1)"
hadoop_version="$(basename "$hadoop_api" .jar)"
hadoop_version="${hadoop_version#hadoop-client-api-}"

delta_package="${SMAR_DELTA_SPARK_PACKAGE:-io.delta:delta-spark_4.2_2.13:4.4.0}"
packages="$delta_package,org.apache.hadoop:hadoop-aws:$hadoop_version"
excludes="$(printf '%s,' \
  org.apache.hadoop:hadoop-client-api org.apache.hadoop:hadoop-client-runtime \
  org.apache.parquet:parquet-hadoop org.apache.parquet:parquet-column \
  org.apache.parquet:parquet-common org.apache.parquet:parquet-encoding \
  org.apache.parquet:parquet-format-structures org.apache.parquet:parquet-jackson \
  com.fasterxml.jackson.core:jackson-databind com.fasterxml.jackson.core:jackson-core \
  com.fasterxml.jackson.core:jackson-annotations \
  org.apache.logging.log4j:log4j-api org.apache.logging.log4j:log4j-core \
  org.apache.logging.log4j:log4j-slf4j2-impl org.slf4j:slf4j-api \
  org.xerial.snappy:snappy-java com.github.luben:zstd-jni io.airlift:aircompressor \
  commons-pool:commons-pool com.google.code.findbugs:jsr305 org.locationtech.jts:jts-core \
  org.roaringbitmap:RoaringBitmap)"
excludes="${excludes%,}"

mkdir -p "$cache/ivy"
cat > "$cache/ivysettings.xml.tmp" <<XML
<ivysettings>
  <settings defaultResolver="central"/>
  <resolvers>
    <ibiblio name="central" m2compatible="true" root="https://repo1.maven.org/maven2/"/>
  </resolvers>
</ivysettings>
XML
mv "$cache/ivysettings.xml.tmp" "$cache/ivysettings.xml"
cat > "$cache/spark-jars.conf.tmp" <<CONF
spark.jars.packages=$packages
spark.jars.excludes=$excludes
spark.jars.ivy=$cache/ivy
spark.jars.ivySettings=$cache/ivysettings.xml
CONF

# spark-submit.conf: the resolution's settings with the AWS SDK bundle moved to the classpath.
write_submit_conf() {
  local bundle
  bundle="$(tr ',' '\n' < "$cache/jars.txt" | sed 's#^file://##' | grep '/software.amazon.awssdk_bundle-' | head -1)"
  [ -n "$bundle" ] || { echo "spark_jars: no AWS SDK bundle among the resolved jars" >&2; exit 1; }
  {
    echo "spark.jars.packages=$packages"
    echo "spark.jars.excludes=$excludes,software.amazon.awssdk:bundle"
    echo "spark.jars.ivy=$cache/ivy"
    echo "spark.jars.ivySettings=$cache/ivysettings.xml"
    echo "spark.driver.extraClassPath=$bundle"
    echo "spark.executor.extraClassPath=$bundle"
  } > "$cache/spark-submit.conf.tmp"
  mv "$cache/spark-submit.conf.tmp" "$cache/spark-submit.conf"
}

stamp="$cache/.resolved"
want="$(sha256sum "$cache/spark-jars.conf.tmp" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && [ -s "$cache/jars.txt" ] \
   && tr ',' '\n' < "$cache/jars.txt" | sed 's#^file:##' | xargs ls >/dev/null 2>&1; then
  rm -f "$cache/spark-jars.conf.tmp"
  [ -s "$cache/spark-submit.conf" ] || write_submit_conf
  echo "spark_jars: cached in $cache ($packages)"
  exit 0
fi
mv "$cache/spark-jars.conf.tmp" "$cache/spark-jars.conf"

probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
cat > "$probe/print_jars.py" <<'PY'
from pyspark.sql import SparkSession

spark = SparkSession.builder.getOrCreate()
print("SMAR_JARS=" + spark.sparkContext.getConf().get("spark.jars", ""))
spark.stop()
PY
confs=()
while IFS= read -r line; do confs+=(--conf "$line"); done < "$cache/spark-jars.conf"
start=$(date +%s%N)
(cd "$probe" && SPARK_HOME="$spark_home" PYSPARK_PYTHON="$python_bin" "$spark_submit" \
   --master 'local[1]' --conf spark.ui.enabled=false "${confs[@]}" print_jars.py) \
   > "$probe/out.log" 2>&1 || { tail -40 "$probe/out.log" >&2; echo "spark_jars: resolution failed" >&2; exit 1; }
end=$(date +%s%N)
jars="$(grep '^SMAR_JARS=' "$probe/out.log" | tail -1 | cut -d= -f2-)"
[ -n "$jars" ] || { tail -40 "$probe/out.log" >&2; echo "spark_jars: no jars reported" >&2; exit 1; }
echo "$jars" > "$cache/jars.txt"
write_submit_conf
echo "$want" > "$stamp"
count="$(echo "$jars" | tr ',' '\n' | wc -l)"
size="$(du -sh "$cache/ivy" | cut -f1)"
echo "spark_jars: resolved $count jars ($size cache) in $(( (end - start) / 1000000 )) ms into $cache"
