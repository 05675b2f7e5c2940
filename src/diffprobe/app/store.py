"""The app's store: objects, classes, and every decision ever made, in SQL (SQLite by default).

Tables:

- ``objects``: one row per image; ``id`` is its row in the project's ``features.npy``. ``label`` is the class it
  is shown under now (the model's prediction while ``status`` is ``predicted``, a person's choice once it is
  ``validated`` or ``dubious``); ``predicted_label`` / ``probability`` are the latest model's. ``version`` counts
  the changes of what the object shows (label, status): a decision made on an older version is refused
  (``StaleError``), so two tabs or two people never overwrite each other silently.
- ``classes``: the bundle's classes, then the ones people add.
- ``batches``: one row per action of a person (validate, dubious, move, undo); an undo names the batch it undoes.
- ``decisions``: append-only history, one row per object an action changed (object, from, to, status, time, user).
  Rows are never updated or deleted; an undo is new rows that restore the previous state.
- ``retrains``: one row per refit of the head on the validated labels (``kind`` retrain), or per return to the
  model's own predictions (``kind`` model).

Every write is one transaction committed before the call returns. SQLite runs with a write-ahead log and
``synchronous=FULL``, so an acknowledged decision survives a killed server or a power cut. The URL is
SQLAlchemy's, so a team can point the app at PostgreSQL instead.
"""

from __future__ import annotations

import json
import threading
import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import (Float, ForeignKey, Index, Integer, String, bindparam, case, create_engine, event, func, insert,
                        inspect, or_, select, text, update)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from ..utils import DiffprobeError

STATUSES = ("predicted", "validated", "dubious")  # as EcoTaxa's object_annotation_status
ACTIONS = {"validate": "validated", "dubious": "dubious", "move": "validated"}  # action -> the status it sets
SORTS = ("confidence", "uncertainty")
BULK_UPDATE_ROWS = 20_000  # new predictions for at least this many objects rebuild the objects' indexes once
MAX_CLASS_NAME = 200  # characters: a class name is a sidebar entry and a TSV field, not a paragraph
# Columns added after the first release: (table, column, SQL definition), added to an older store when it opens.
ADDED_COLUMNS = (("objects", "version", "INTEGER NOT NULL DEFAULT 0"),
                 ("retrains", "kind", "VARCHAR NOT NULL DEFAULT 'retrain'"))


class StaleError(DiffprobeError):
    """A decision on objects changed since the client read them (``current``: those objects as they are now)."""

    def __init__(self, current: list[dict]):
        ids = ", ".join(str(o["id"]) for o in current[:5])
        super().__init__(f"image {ids}{' ...' if len(current) > 5 else ''} changed since this page read "
                         f"{'it' if len(current) == 1 else 'them'} (another tab or person decided); nothing was "
                         f"changed: look again and decide anew")
        self.current = current


def check_class_name(name: str) -> str:
    """``name`` stripped, or DiffprobeError when it cannot be a class: empty, longer than MAX_CLASS_NAME, or holding
    a control character (a tab or newline would break the TSV export's rows)."""
    name = name.strip()
    if not name:
        raise DiffprobeError("a class name cannot be empty")
    if len(name) > MAX_CLASS_NAME:
        raise DiffprobeError(f"a class name has at most {MAX_CLASS_NAME} characters, this one {len(name)}")
    bad = sorted({repr(ch) for ch in name if unicodedata.category(ch) in ("Cc", "Zl", "Zp")})
    if bad:
        raise DiffprobeError(f"a class name cannot hold control characters (tab, newline, ...); found "
                             f"{', '.join(bad)} in {name[:60]!r}")
    return name


class Base(DeclarativeBase):
    pass


class ObjectRow(Base):
    __tablename__ = "objects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    object_id: Mapped[str] = mapped_column(String, unique=True)
    path: Mapped[str] = mapped_column(String)
    sample: Mapped[str] = mapped_column(String)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    predicted_label: Mapped[str] = mapped_column(String)
    probability: Mapped[float] = mapped_column(Float)
    label: Mapped[str] = mapped_column(String)
    status: Mapped[str] = mapped_column(String)
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    __table_args__ = (Index("ix_objects_label_probability", "label", "probability"),
                      Index("ix_objects_status_probability", "status", "probability"))


class ClassRow(Base):
    __tablename__ = "classes"
    name: Mapped[str] = mapped_column(String, primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String)  # model | user


class BatchRow(Base):
    __tablename__ = "batches"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String)
    user: Mapped[str] = mapped_column(String)
    time: Mapped[str] = mapped_column(String)
    undoes: Mapped[int | None] = mapped_column(ForeignKey("batches.id"), nullable=True)


class DecisionRow(Base):
    __tablename__ = "decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"), index=True)
    object_id: Mapped[int] = mapped_column(ForeignKey("objects.id"), index=True)
    from_label: Mapped[str] = mapped_column(String)
    to_label: Mapped[str] = mapped_column(String)
    from_status: Mapped[str] = mapped_column(String)
    to_status: Mapped[str] = mapped_column(String)
    time: Mapped[str] = mapped_column(String)
    user: Mapped[str] = mapped_column(String)


class RetrainRow(Base):
    __tablename__ = "retrains"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[str] = mapped_column(String)
    user: Mapped[str] = mapped_column(String)
    n_validated: Mapped[int] = mapped_column(Integer)
    n_changed: Mapped[int] = mapped_column(Integer)
    classes: Mapped[str] = mapped_column(String)  # JSON list of the classes the new head knows
    kind: Mapped[str] = mapped_column(String, default="retrain", server_default="retrain")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _durable_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(conn, _record):
        cur = conn.cursor()
        # WAL + FULL: a commit is on disk when it returns; readers never block the writer.
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.close()


class Store:
    """The objects, classes and decisions of one project (``url``: a SQLAlchemy database URL)."""

    def __init__(self, url: str):
        self.url = url
        sqlite = url.startswith("sqlite")
        self.engine = create_engine(url, connect_args={"check_same_thread": False} if sqlite else {})
        if sqlite:
            _durable_sqlite(self.engine)
        Base.metadata.create_all(self.engine)
        self._add_columns()
        self._write = threading.Lock()  # one writer at a time: SQLite allows no more, and batches stay whole

    def close(self) -> None:
        self.engine.dispose()

    def _add_columns(self) -> None:
        """Bring a store made by an older diffprobe up to date (create_all adds tables, never columns)."""
        found = inspect(self.engine)
        with self.engine.begin() as conn:
            for table, column, definition in ADDED_COLUMNS:
                if column not in {c["name"] for c in found.get_columns(table)}:
                    conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {definition}"))

    # ---- filling (diffprobe app init) ----------------------------------------------------------------
    def add_classes(self, names: Iterable[str], source: str) -> None:
        with self._write, Session(self.engine) as s, s.begin():
            known = set(s.scalars(select(ClassRow.name)))
            start = _next_position(s)
            new = [n for n in dict.fromkeys(names) if n not in known]
            if new:
                s.execute(insert(ClassRow), [{"name": n, "position": start + i, "source": source}
                                             for i, n in enumerate(new)])

    def add_objects(self, rows: list[dict]) -> None:
        """Rows with id, object_id, path, sample, width, height, predicted_label, probability."""
        with self._write, Session(self.engine) as s, s.begin():
            s.execute(insert(ObjectRow), [{**r, "label": r["predicted_label"], "status": "predicted"} for r in rows])

    # ---- reading -------------------------------------------------------------------------------------
    def classes(self) -> list[str]:
        with Session(self.engine) as s:
            return list(s.scalars(select(ClassRow.name).order_by(ClassRow.position)))

    def n_objects(self) -> int:
        with Session(self.engine) as s:
            return s.scalar(select(func.count()).select_from(ObjectRow)) or 0

    def class_counts(self) -> list[dict]:
        """Per class, in class order: objects shown under it, by status, and where the class came from (``source``:
        model, or user for one people added)."""
        with Session(self.engine) as s:
            counts = s.execute(select(ObjectRow.label, ObjectRow.status, func.count())
                               .group_by(ObjectRow.label, ObjectRow.status)).all()
            sources = dict(s.execute(select(ClassRow.name, ClassRow.source).order_by(ClassRow.position)).all())
        table = {c: dict.fromkeys(STATUSES, 0) for c in sources}
        for label, status, n in counts:
            table.setdefault(label, dict.fromkeys(STATUSES, 0))[status] = n
        return [{"name": c, **n, "total": sum(n.values()), "source": sources.get(c, "user")} for c, n in table.items()]

    def remove_class(self, name: str) -> None:
        """Remove a class people added that no object is in nor predicted as (a misspelt or unusable name). The
        history keeps its name; an undo that puts an object back into it brings the class back."""
        with self._write, Session(self.engine) as s, s.begin():
            row = s.get(ClassRow, name)
            if row is None:
                raise DiffprobeError(f"no class {name[:80]!r} in this project; GET /api/project lists the classes")
            if row.source != "user":
                raise DiffprobeError(f"{name[:80]!r} is one of the model's classes; only classes people added can be "
                                     f"removed")
            n = s.scalar(select(func.count()).select_from(ObjectRow)
                         .where(or_(ObjectRow.label == name, ObjectRow.predicted_label == name))) or 0
            if n:
                raise DiffprobeError(f"class {name[:80]!r} still holds or is predicted for {n} images; move them to "
                                     f"another class (and retrain) first")
            s.delete(row)

    def page(self, label: str | None, *, status: str | None = None, sort: str = "confidence", offset: int = 0,
             limit: int = 100, ids: list[int] | None = None) -> tuple[int, list[dict]]:
        """(total, rows) of the objects shown under ``label`` (None: any), optionally of one status, or among
        ``ids`` (in that order), most confident first (``confidence``) or least (``uncertainty``)."""
        where = []
        if label is not None:
            where.append(ObjectRow.label == label)
        if status is not None:
            where.append(ObjectRow.status == status)
        if ids is not None:
            where.append(ObjectRow.id.in_(ids))
        order = ObjectRow.probability.desc() if sort == "confidence" else ObjectRow.probability.asc()
        with Session(self.engine) as s:
            total = s.scalar(select(func.count()).select_from(ObjectRow).where(*where)) or 0
            q = select(ObjectRow).where(*where)
            if ids is None:
                q = q.order_by(order, ObjectRow.id).offset(offset).limit(limit)
            rows = [_as_dict(o) for o in s.scalars(q)]
        if ids is not None:
            rank = {i: k for k, i in enumerate(ids)}
            rows = sorted(rows, key=lambda r: rank[r["id"]])[offset : offset + limit]
        return total, rows

    def get(self, object_id: int) -> dict | None:
        with Session(self.engine) as s:
            o = s.get(ObjectRow, object_id)
            return _as_dict(o) if o else None

    def all_objects(self) -> list[dict]:
        with Session(self.engine) as s:
            return [_as_dict(o) for o in s.scalars(select(ObjectRow).order_by(ObjectRow.id))]

    def last_decisions(self) -> dict[int, dict]:
        """Per object, its latest decision (user, time): who set its current label, for the export."""
        with Session(self.engine) as s:
            latest = select(func.max(DecisionRow.id)).group_by(DecisionRow.object_id).scalar_subquery()
            return {d.object_id: {"user": d.user, "time": d.time}
                    for d in s.scalars(select(DecisionRow).where(DecisionRow.id.in_(latest)))}

    def history(self, limit: int = 50) -> list[dict]:
        """The latest decisions, newest first."""
        with Session(self.engine) as s:
            rows = s.execute(select(DecisionRow, BatchRow.kind).join(BatchRow, DecisionRow.batch_id == BatchRow.id)
                             .order_by(DecisionRow.id.desc()).limit(limit)).all()
        return [{"object": d.object_id, "from": d.from_label, "to": d.to_label, "from_status": d.from_status,
                 "status": d.to_status, "time": d.time, "user": d.user, "action": kind, "batch": d.batch_id}
                for d, kind in rows]

    def validated(self) -> tuple[list[int], list[str]]:
        """Ids and labels of the validated objects (what a retrain learns from)."""
        with Session(self.engine) as s:
            rows = s.execute(select(ObjectRow.id, ObjectRow.label).where(ObjectRow.status == "validated")
                             .order_by(ObjectRow.id)).all()
        return [r[0] for r in rows], [r[1] for r in rows]

    def uncertain_ids(self, max_probability: float | None = None) -> list[int]:
        """Ids of the objects still ``predicted`` (with probability below ``max_probability``, when given)."""
        return [i for i, _ in self.predicted_objects(max_probability)]

    def predicted_objects(self, max_probability: float | None = None) -> list[tuple[int, float]]:
        """(id, probability) of the objects still ``predicted`` (below ``max_probability``, when given), by id."""
        where = [ObjectRow.status == "predicted"]
        if max_probability is not None:
            where.append(ObjectRow.probability < max_probability)
        with Session(self.engine) as s:
            return [(i, p) for i, p in s.execute(select(ObjectRow.id, ObjectRow.probability).where(*where)
                                                 .order_by(ObjectRow.id))]

    def label_counts(self) -> list[tuple[str, str, str, int]]:
        """(predicted_label, label, status, count) for every combination present: what the dashboard counts."""
        with Session(self.engine) as s:
            return [tuple(r) for r in s.execute(select(ObjectRow.predicted_label, ObjectRow.label, ObjectRow.status,
                                                       func.count())
                                                .group_by(ObjectRow.predicted_label, ObjectRow.label,
                                                          ObjectRow.status))]

    def retrains(self) -> list[dict]:
        with Session(self.engine) as s:
            return [{"time": r.time, "user": r.user, "kind": r.kind, "n_validated": r.n_validated,
                     "n_changed": r.n_changed, "classes": json.loads(r.classes)}
                    for r in s.scalars(select(RetrainRow).order_by(RetrainRow.id))]

    # ---- decisions -----------------------------------------------------------------------------------
    def decide(self, ids: list[int], action: str, *, user: str, label: str | None = None,
               new_class: bool = False, versions: list[int] | None = None) -> dict:
        """Validate, mark dubious or move (to ``label``, which validates) the objects ``ids``, as one batch that
        ``undo`` reverts. Objects already in the target state are left alone. ``versions`` (one per id, as the
        caller read them): when any object has changed since, nothing is done and StaleError names them.
        Returns {batch, changed}."""
        if action not in ACTIONS:
            raise DiffprobeError(f"unknown action {action!r}; choose one of {', '.join(ACTIONS)}")
        if not ids:
            raise DiffprobeError("no objects selected; select images first")
        creates = False
        if action == "move":
            if not (label or "").strip():
                raise DiffprobeError("moving needs a class name ('label')")
            label = check_class_name(label)
            creates = label not in self.classes()
            if creates and not new_class:
                raise DiffprobeError(f"unknown class {label!r}; pick one of the project's classes, or pass "
                                     f"new_class=true to create it")
        elif label is not None:
            raise DiffprobeError(f"'label' is only for the move action, not {action!r}")
        if versions is not None and len(versions) != len(ids):
            raise DiffprobeError(f"'versions' needs one version per id: {len(ids)} ids, {len(versions)} versions")
        to_status, now = ACTIONS[action], _now()
        with self._write, Session(self.engine) as s, s.begin():
            objects = list(s.scalars(select(ObjectRow).where(ObjectRow.id.in_(ids))))
            missing = sorted(set(ids) - {o.id for o in objects})
            if missing:
                raise DiffprobeError(f"no object with id {', '.join(map(str, missing[:5]))} in this project")
            if versions is not None:
                read = dict(zip(ids, versions, strict=True))
                stale = [_as_dict(o) for o in objects if o.version != read[o.id]]
                if stale:
                    raise StaleError(stale)
            changes = [(o, label if action == "move" else o.label) for o in objects]
            changes = [(o, to) for o, to in changes if (o.label, o.status) != (to, to_status)]
            if not changes:
                return {"batch": None, "changed": 0}
            if creates:  # in the same transaction: a refused move leaves no new class behind
                s.add(ClassRow(name=label, position=_next_position(s), source="user"))
            batch = BatchRow(kind=action, user=user, time=now)
            s.add(batch)
            s.flush()
            s.execute(insert(DecisionRow), [
                {"batch_id": batch.id, "object_id": o.id, "from_label": o.label, "to_label": to,
                 "from_status": o.status, "to_status": to_status, "time": now, "user": user} for o, to in changes])
            for o, to in changes:
                o.label, o.status, o.version = to, to_status, o.version + 1
            return {"batch": batch.id, "changed": len(changes)}

    def undo(self, *, user: str) -> dict:
        """Revert ``user``'s latest action not yet undone (repeat to go further back). Objects changed since by
        someone else are left as they are and counted in ``skipped``. Returns {batch, undone, changed, skipped}."""
        now = _now()
        with self._write, Session(self.engine) as s, s.begin():
            undone = select(BatchRow.undoes).where(BatchRow.undoes.is_not(None))
            target = s.scalars(select(BatchRow).where(BatchRow.user == user, BatchRow.kind != "undo",
                                                      BatchRow.id.not_in(undone))
                               .order_by(BatchRow.id.desc()).limit(1)).first()
            if target is None:
                raise DiffprobeError(f"nothing to undo: {user} has no action left that is not undone")
            decisions = list(s.scalars(select(DecisionRow).where(DecisionRow.batch_id == target.id)))
            objects = {o.id: o for o in s.scalars(select(ObjectRow).where(
                ObjectRow.id.in_([d.object_id for d in decisions])))}
            batch = BatchRow(kind="undo", user=user, time=now, undoes=target.id)
            s.add(batch)
            s.flush()
            rows, skipped = [], 0
            known = set(s.scalars(select(ClassRow.name)))
            for d in decisions:
                o = objects[d.object_id]
                if (o.label, o.status) != (d.to_label, d.to_status):
                    skipped += 1
                    continue
                rows.append({"batch_id": batch.id, "object_id": o.id, "from_label": o.label, "to_label": d.from_label,
                             "from_status": o.status, "to_status": d.from_status, "time": now, "user": user})
                o.label, o.status, o.version = d.from_label, d.from_status, o.version + 1
                if d.from_label not in known:  # removed since: the object's class comes back with it
                    s.add(ClassRow(name=d.from_label, position=_next_position(s), source="user"))
                    known.add(d.from_label)
            if rows:
                s.execute(insert(DecisionRow), rows)
            return {"batch": batch.id, "undone": target.id, "action": target.kind, "changed": len(rows),
                    "skipped": skipped}

    # ---- the model's predictions ---------------------------------------------------------------------
    def set_predictions(self, ids: list[int], labels: list[str], probabilities: list[float], *, user: str,
                        classes: list[str], n_validated: int, kind: str = "retrain") -> list[tuple[int, str, str]]:
        """Store a new model's predictions; objects still ``predicted`` follow them (a new version where their
        class changes). ``kind``: retrain, or model (back to the model's own). Returns those that changed class:
        (id, label before, label after)."""
        with self._write, Session(self.engine) as s, s.begin():
            before = dict(s.execute(select(ObjectRow.id, ObjectRow.label).where(ObjectRow.status == "predicted")).all())
            params = [{"oid": i, "pl": lab, "p": float(p)} for i, lab, p in zip(ids, labels, probabilities, strict=True)]
            # Row-by-row index upkeep dominates a retrain's write (250k objects: 4.8 s against 1.0 s for dropping the
            # indexes and building them again once), so large updates rebuild them, inside the same transaction.
            rebuild = ObjectRow.__table__.indexes if len(params) >= BULK_UPDATE_ROWS else set()
            conn = s.connection()
            for index in rebuild:
                index.drop(conn)
            s.execute(update(ObjectRow.__table__).where(ObjectRow.__table__.c.id == bindparam("oid"))
                      .values(predicted_label=bindparam("pl"), probability=bindparam("p")), params)
            s.execute(update(ObjectRow).where(ObjectRow.status == "predicted")
                      .values(label=ObjectRow.predicted_label,
                              version=case((ObjectRow.label != ObjectRow.predicted_label, ObjectRow.version + 1),
                                           else_=ObjectRow.version))
                      .execution_options(synchronize_session=False))
            for index in rebuild:
                index.create(conn)
            changed = [(i, before[i], lab) for i, lab in zip(ids, labels, strict=True)
                       if i in before and before[i] != lab]
            s.add(RetrainRow(time=_now(), user=user, n_validated=n_validated, n_changed=len(changed),
                             classes=json.dumps(classes), kind=kind))
            return changed


def _next_position(s: Session) -> int:
    return (s.scalar(select(func.max(ClassRow.position))) or 0) + 1


def _as_dict(o: ObjectRow) -> dict:
    return {"id": o.id, "object_id": o.object_id, "path": o.path, "sample": o.sample, "width": o.width,
            "height": o.height, "predicted_label": o.predicted_label, "probability": o.probability, "label": o.label,
            "status": o.status, "version": o.version}
