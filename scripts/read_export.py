#!/usr/bin/env python3
"""Reads an `argus export` directory with pyarrow, DuckDB and Spark, as each reads Hive-partitioned
Parquet out of the box, and prints what each saw as one JSON object (the export test compares them
with the log). Usage: read_export.py DIR [--no-spark]"""
import json
import os
import sys

out = sys.argv[1]
spark_on = "--no-spark" not in sys.argv
seen = {}

import pyarrow.dataset as ds

pa = {}
for t in ("events", "decisions", "features"):
    if not os.path.isdir(f"{out}/{t}"):
        pa[t] = 0
        continue
    d = ds.dataset(f"{out}/{t}", format="parquet", partitioning="hive")
    tab = d.to_table()
    pa[t] = tab.num_rows
    if t == "events":
        rows = tab.to_pylist()
        pa["distinct_event_ids"] = len({r["event_id"] for r in rows})
        pa["event_types"] = sorted({r["type"] for r in rows})
        pa["dates"] = sorted({str(r["date"]) for r in rows})
        e1 = next((r for r in rows if r["event_id"] == "evt-0001"), None)
        if e1:
            pa["evt-0001"] = {"actor": e1["actor"], "type": e1["type"], "event_type": e1["event_type"],
                              "data": json.loads(e1["data"]), "time_ms": int(e1["event_time"].timestamp() * 1000)}
    if t == "decisions":
        rows = tab.to_pylist()
        pa["actions"] = {}
        for r in rows:
            pa["actions"][r["action"]] = pa["actions"].get(r["action"], 0) + 1
        pa["decision_ids"] = sorted(r["event_id"] for r in rows)
seen["pyarrow"] = pa

import duckdb

con = duckdb.connect()
dk = {}
for t in ("events", "decisions", "features"):
    if not os.path.isdir(f"{out}/{t}"):
        dk[t] = 0
        continue
    dk[t] = con.execute(
        f"SELECT count(*) FROM read_parquet('{out}/{t}/**/*.parquet', hive_partitioning = true, union_by_name = true)"
    ).fetchone()[0]
dk["per_type"] = dict(con.execute(
    f"SELECT type, count(*) FROM read_parquet('{out}/events/**/*.parquet', hive_partitioning = true) GROUP BY type ORDER BY type"
).fetchall())
dk["actions"] = dict(con.execute(
    f"SELECT action, count(*) FROM read_parquet('{out}/decisions/**/*.parquet', hive_partitioning = true) GROUP BY action"
).fetchall())
seen["duckdb"] = dk

if spark_on:
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master("local[1]").appName("argus-export-check")
             .config("spark.ui.enabled", "false").config("spark.sql.session.timeZone", "UTC")
             .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    sp = {}
    for t in ("events", "decisions", "features"):
        df = spark.read.option("mergeSchema", "true").parquet(f"{out}/{t}")
        sp[t] = df.count()
    ev = spark.read.parquet(f"{out}/events")
    sp["per_type"] = {r["type"]: r["count"] for r in ev.groupBy("type").count().collect()}
    dec = spark.read.parquet(f"{out}/decisions")
    sp["actions"] = {r["action"]: r["count"] for r in dec.groupBy("action").count().collect()}
    for row in ev.filter("event_id = 'evt-0001'").collect():
        sp["evt-0001"] = {"actor": row["actor"], "date": str(row["date"])}
    spark.stop()
    seen["spark"] = sp

print(json.dumps(seen, sort_keys=True))
