"""Where a party's rows come from: files read whole (CSV, .npy) or SQL engines the local
statistics are pushed down into (Parquet and DuckDB through DuckDB, PostgreSQL).

* :mod:`.files` and :mod:`.csvparse`: CSV tables and .npy vectors, loaded and validated;
* :mod:`.sql`: the one aggregate statement, in DuckDB's and PostgreSQL's dialects;
* :mod:`.base`: what a SQL source provides, load-time validation, result conversion;
* :mod:`.duckdb`, :mod:`.postgres`: the engines (their drivers imported only when used).
"""
