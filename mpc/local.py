"""``mpc.LocalCluster``: a whole deployment on this machine, from pandas DataFrames or files.

One coordinator and one process per party, on 127.0.0.1 with freshly generated certificates,
exactly as in production (gRPC over mutual TLS, secret sharing, the parties' own policies):
only the machine is shared. Meant for trying the API, notebooks and tests::

    import mpc

    with mpc.LocalCluster(
        {"hospital_a": {"patients": df_a}, "hospital_b": {"patients": df_b}},
        bounds={"age": (0, 120)},
    ) as cluster, cluster.client() as client:
        print(client.mean("patients", ["age"]).as_dict())

Each DataFrame is written to its party's data directory (CSV, or Parquet with
``file_format="parquet"``) and declared in that party's config. Dataset options (``bounds``,
``categories``, ``budget``, ``participation``, ``exact_filters``, ``max_rows``,
``allow_central``, ``missing``, ``min_parties``, ``max_bins``) are given either once for every
dataset (``bounds={"age": (0, 120)}``) or per dataset name
(``bounds={"patients": {"age": (0, 120)}}``). They mean what the party config's keys mean
(see the README's config reference), and they are public, as in production.

Categories: a DataFrame's ``category`` columns declare their categories, and text (object or
string) columns the distinct values present. Inferring from the values makes them public, so
for real data pass ``categories`` (column -> names) yourself.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mpc.client import Client
from mpc.demo.cluster import LocalCluster as ProcessCluster
from mpc.demo.configs import DatasetFile
from mpc.errors import ConfigError
from mpc.identity import check_party_id

#: Option names accepted per dataset (given once for all datasets, or per dataset name).
DATASET_OPTIONS = (
    "bounds",
    "categories",
    "budget",
    "participation",
    "exact_filters",
    "max_rows",
    "allow_central",
    "missing",
    "min_parties",
    "max_bins",
)
#: ``max_rows`` when not given: the party's own row count with ample room to grow.
DEFAULT_MAX_ROWS = 100_000


def _is_per_dataset(option: str, value: object, names: set[str]) -> bool:
    """Is ``value`` keyed by dataset name (rather than one value for every dataset)?"""
    if not isinstance(value, Mapping) or not value:
        return False
    if option in ("bounds", "categories"):
        # Per column the values are pairs or lists; per dataset they are mappings.
        return all(isinstance(v, Mapping) for v in value.values())
    return set(value) <= names


def _option(options: Mapping[str, object], option: str, dataset: str, names: set[str]) -> Any:
    value = options.get(option)
    if _is_per_dataset(option, value, names):
        assert isinstance(value, Mapping)
        return value.get(dataset)
    return value


def infer_categories(frames: Sequence[Any]) -> dict[str, tuple[str, ...]]:
    """Declared categories of one dataset from every party's DataFrame, the same for all:
    a ``category`` column's categories (in order, merged across parties), a text column's
    sorted distinct values over all parties (which makes those values public)."""
    ordered: dict[str, list[str]] = {}
    texts: dict[str, set[str]] = {}
    for frame in frames:
        for column in frame.columns:
            series = frame[column]
            dtype = series.dtype
            if getattr(dtype, "name", "") == "category":
                merged = ordered.setdefault(str(column), [])
                merged += [str(c) for c in dtype.categories if str(c) not in merged]
            elif str(dtype) == "object" or str(dtype).startswith(("string", "str")):
                values = set(series.dropna().astype(str).tolist()) - {""}
                texts.setdefault(str(column), set()).update(values)
    out = {column: tuple(values) for column, values in ordered.items()}
    for column, values in texts.items():
        if column not in out:
            out[column] = tuple(sorted(values))
    return out


def _is_frame(value: object) -> bool:
    return hasattr(value, "to_csv") and hasattr(value, "columns")  # a pandas DataFrame


def _write_frame(frame: Any, path: Path, file_format: str) -> None:
    table = frame.copy()
    for column in table.columns:
        if table[column].dtype == bool:
            table[column] = table[column].astype(np.int64)  # parties read numbers, not True
    if file_format == "parquet":
        table.to_parquet(path, index=False)
    else:
        table.to_csv(path, index=False, float_format="%.17g")


class LocalCluster(ProcessCluster):
    """A coordinator and one process per party on 127.0.0.1, from DataFrames or files.

    ``data`` maps each party id to its datasets: dataset name -> a pandas DataFrame, a path
    to a CSV (or Parquet) file, a one-dimensional numpy array (a vector dataset) or a
    :class:`mpc.demo.cluster.DatasetFile` (used as is). ``workdir`` holds the certificates,
    configs, data and logs (default: a temporary directory, removed by :meth:`stop`).
    ``client_budgets`` sets the coordinator's per-client budgets (client -> (epsilon, delta)).
    Other keywords (``job_timeout``, ``log_level``, ``min_colluders``, ...) are those of
    :class:`mpc.demo.cluster.LocalCluster`.

    Use it with ``with`` (started on entry, stopped on exit) or call :meth:`start` and
    :meth:`stop`; :meth:`client` starts the cluster when needed.
    """

    def __init__(
        self,
        data: Mapping[str, Mapping[str, object]],
        *,
        workdir: str | Path | None = None,
        bounds: Mapping[str, Any] | None = None,
        categories: Mapping[str, Any] | None = None,
        budget: tuple[float, float] | Mapping[str, tuple[float, float]] | None = None,
        participation: str | Mapping[str, str] | None = None,
        exact_filters: bool | Mapping[str, bool] | None = None,
        max_rows: int | Mapping[str, int] | None = None,
        allow_central: bool | Mapping[str, bool] | None = None,
        missing: str | Mapping[str, str] | None = None,
        min_parties: int | Mapping[str, int] | None = None,
        max_bins: int | Mapping[str, int] | None = None,
        file_format: str = "csv",
        client_budgets: Mapping[str, tuple[float, float]] | None = None,
        **cluster_options: Any,
    ) -> None:
        if not data:
            raise ConfigError("a LocalCluster needs at least one party")
        for party_id in data:
            check_party_id(party_id)  # before anything is written
        if file_format not in ("csv", "parquet"):
            raise ConfigError("file_format must be 'csv' or 'parquet'")
        self._own_workdir = workdir is None
        root = Path(tempfile.mkdtemp(prefix="mpc-local-")) if workdir is None else Path(workdir)
        options = {
            "bounds": bounds,
            "categories": categories,
            "budget": budget,
            "participation": participation,
            "exact_filters": exact_filters,
            "max_rows": max_rows,
            "allow_central": allow_central,
            "missing": missing,
            "min_parties": min_parties,
            "max_bins": max_bins,
        }
        names = {name for held in data.values() for name in held}
        # Categories are public and must be the same at every party: inferred over all.
        inferred = {
            name: infer_categories(
                [v for held in data.values() for n, v in held.items() if n == name and _is_frame(v)]
            )
            for name in names
        }
        datasets: dict[str, dict[str, DatasetFile]] = {}
        try:
            for party_id, held in data.items():
                folder = root / "data" / party_id
                folder.mkdir(parents=True, exist_ok=True)
                datasets[party_id] = {
                    name: self._dataset(
                        folder, name, value, options, names, file_format, inferred[name]
                    )
                    for name, value in held.items()
                }
        except BaseException:
            if self._own_workdir:
                shutil.rmtree(root, ignore_errors=True)
            raise
        super().__init__(root, datasets, budgets=client_budgets, **cluster_options)
        self._started = False
        self._removed = False

    @staticmethod
    def _dataset(
        folder: Path,
        name: str,
        value: object,
        options: Mapping[str, object],
        names: set[str],
        file_format: str,
        inferred: Mapping[str, tuple[str, ...]],
    ) -> DatasetFile:
        if isinstance(value, DatasetFile):
            return value
        pick = {o: _option(options, o, name, names) for o in DATASET_OPTIONS}
        declared: dict[str, tuple[str, ...]] = {}
        kind, source = "table", None
        if _is_frame(value):
            declared = {c: v for c, v in inferred.items() if c in value.columns}  # type: ignore[attr-defined]
            rows = len(value)  # type: ignore[arg-type]
            path = folder / f"{name}.{'parquet' if file_format == 'parquet' else 'csv'}"
            _write_frame(value, path, file_format)
            source = "parquet" if file_format == "parquet" else None
        elif isinstance(value, np.ndarray):
            if value.ndim != 1:
                raise ConfigError(f"dataset {name!r}: a numpy array must be one-dimensional")
            rows, kind, path = value.size, "vector", folder / f"{name}.npy"
            np.save(path, value.astype(np.float64))
        elif isinstance(value, (str, Path)):
            path = Path(value).resolve()
            rows = 0
            source = "parquet" if path.suffix == ".parquet" else None
        else:
            raise ConfigError(
                f"dataset {name!r}: expected a DataFrame, a file path, a 1-D numpy array or a "
                f"DatasetFile, not {type(value).__name__}"
            )
        given = pick["categories"] or {}
        for column, values in given.items():
            if values is None:
                declared.pop(column, None)  # explicitly not categorical
            else:
                declared[column] = tuple(str(v) for v in values)
        bounds = {c: (float(lo), float(hi)) for c, (lo, hi) in (pick["bounds"] or {}).items()}
        if kind == "vector":
            bounds, declared = {}, {}  # a vector has no columns to declare
        budget = pick["budget"]
        return DatasetFile(
            path,
            max_rows=int(pick["max_rows"] or max(DEFAULT_MAX_ROWS, 2 * rows)),
            kind=kind,
            bounds=bounds,
            budget=(float(budget[0]), float(budget[1])) if budget is not None else None,
            allow_central=bool(pick["allow_central"]),
            participation=pick["participation"],
            missing=pick["missing"],
            categories={c: v for c, v in declared.items() if c not in bounds},
            exact_filters=pick["exact_filters"],
            source=source,
            min_parties=pick["min_parties"],
            max_bins=pick["max_bins"],
        )

    def dataset_files(self) -> dict[str, dict[str, DatasetFile]]:
        """Per party: the dataset files and declarations this cluster serves."""
        return {pid: dict(held) for pid, held in self.datasets.items()}

    def start(self) -> LocalCluster:  # type: ignore[override]
        """Start every party, then the coordinator; returns the cluster."""
        if self._removed:
            raise ConfigError("this LocalCluster was stopped and its temporary files removed")
        if not self._started:
            try:
                super().start()
            except BaseException:
                self.stop()
                raise
            self._started = True
        return self

    def __enter__(self) -> LocalCluster:
        return self.start()

    def client(self, timeout: float = 120.0, *, name: str = "client") -> Client:
        """A :class:`mpc.client.Client` connected to the coordinator (starts the cluster)."""
        self.start()
        return Client(self.coordinator_address, tls_dir=self.tls_dir, name=name, timeout=timeout)

    def stop(self) -> None:
        """Stop every process; remove the workdir when the cluster made it."""
        super().stop()
        self._started = False
        if self._own_workdir and not self._removed:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self._removed = True


__all__ = ["DATASET_OPTIONS", "LocalCluster", "infer_categories"]
