"""`curate demo`'s second half: an annotation round over the demo's curated series, read by
simulated readers while Airflow waits, then what a project manager reads of it.

The annotation service runs as its own process on a free loopback port with a fresh SQLite
database under the demo's folder; the demo makes a site admin (a random password, printed for a
person to log in to the viewer), a chest-findings project with the shipped `chest_findings_v1`
schema, a quality-review project, and a pipeline token that Airflow reads as the connection
`curate_annotation`. Then `annotation_round` runs under `dag.test()` exactly as the scheduler would
run it: its waits defer to the round trigger, and five simulated readers (three careful, one
random, one straight-lining) work their queues over the service's REST API meanwhile, answering
from the synthetic site's ground truth.

Why the round reads every chest projection image of the site (CR, DX, chest pictures, CT
topograms) with all five readers on every item: QC judges a reader only on enough readings
(straight-lining from 20, random answering from 30 item-labels), and the demo's three patients have
few radiographs. Body part: chest or none recorded (the de-identified chest pictures carry none).
"""
from __future__ import annotations

import json
import logging
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from curation.vocabulary import QualityDecision, SeriesKind

REPO = Path(__file__).resolve().parents[1]
DAG_ID = "annotation_round"
LABELS_PROJECT, REVIEW_PROJECT = "demo-chest-findings", "demo-quality-review"
LABEL_SCHEMA = "chest_findings_v1"
ADMIN = "demo-admin"
#: The labels round: three careful readers, one answering at random, one straight-lining.
READERS = "careful:3,random:1,flat:1"
#: The quality-review round: three careful reviewers per series, the majority decides.
REVIEWERS = "careful:3"
READER_SEED = 7
#: The projection images the site's ground truth has chest findings for (synth.findings.CHEST_FINDINGS).
CHEST_KINDS = [str(k) for k in (SeriesKind.CR, SeriesKind.DX, SeriesKind.CT_LOCALIZER)]
#: Body parts: chest, or none recorded ("": the de-identified chest pictures carry none; an empty
#: list would mean the schema's [CHEST]).
CHEST_OR_UNKNOWN = ["CHEST", ""]
#: Findings are read on approved series and on those the model sent to review (a borderline exposure
#: hides no finding; the quality-review round decides on them meanwhile): the demo's first run then
#: reads as many items as its later ones.
READ_DECISIONS = [str(QualityDecision.APPROVE), str(QualityDecision.REVIEW)]
#: A site with more patients would read longer: the round is capped, drawn with the seed.
MAX_ITEMS = 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Service:
    """`curate annotation serve` in a child process on loopback, its log in a file."""

    url: str
    database_url: str
    proc: subprocess.Popen
    log_path: Path

    @classmethod
    def start(cls, folder: Path) -> Service:
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("annotation.db", "annotation.db-wal", "annotation.db-shm"):
            (folder / name).unlink(missing_ok=True)  # a fresh service per demo run
        db = f"sqlite:///{folder / 'annotation.db'}"
        port = free_port()
        log_path = folder / "service.log"
        env = {**os.environ, "ANNOTATION_DATABASE_URL": db}
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "curate.main", "annotation", "serve", "--host", "127.0.0.1",
                                     "--port", str(port)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
)  # same process group: Ctrl-C stops it with the demo
        service = cls(f"http://127.0.0.1:{port}", db, proc, log_path)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the annotation service exited ({proc.returncode}); its log: {log_path}")
            try:
                if httpx.get(service.url + "/api/health", timeout=1).status_code == 200:
                    return service
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        service.stop()
        raise RuntimeError(f"the annotation service did not answer within 90 s; its log: {log_path}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _ok(r: httpx.Response, *codes: int) -> Any:
    if r.status_code not in (codes or (200,)):
        raise RuntimeError(f"annotation service: {r.request.method} {r.request.url.path}: {r.status_code} {r.text[:300]}")
    return r.json()


@dataclass
class Setup:
    """What the demo made on the service: the admin's login and session, project ids, the pipeline token."""

    password: str
    admin_token: str
    projects: dict[str, int]
    pipeline_token: str

    def connection(self, url: str) -> str:
        """The Airflow connection `curate_annotation` as AIRFLOW_CONN_CURATE_ANNOTATION's JSON."""
        return json.dumps({"conn_type": "http", "host": url, "password": self.pipeline_token})


def set_up(service: Service) -> Setup:
    """Admin (through the CLI's database access, as `curate annotation admin create` does), the two
    projects and the pipeline's service token (through the admin API)."""
    from annotation.admin import create_admin
    from curation.annotation_schema import load_schema

    password = secrets.token_urlsafe(12)
    create_admin(service.database_url, ADMIN, password)
    with httpx.Client(base_url=service.url, timeout=60) as c:
        token = _ok(c.post("/api/auth/login", json={"username": ADMIN, "password": password}))["token"]
        c.headers["Authorization"] = f"Bearer {token}"
        projects = {
            LABELS_PROJECT: _ok(c.post("/api/projects", json={"name": LABELS_PROJECT,
                                                              "schema": load_schema(LABEL_SCHEMA).payload}), 201)["id"],
            REVIEW_PROJECT: _ok(c.post("/api/projects", json={"name": REVIEW_PROJECT, "kind": "quality_review"}),
                                201)["id"]}
        pipeline = _ok(c.post("/api/service-tokens", json={"name": "airflow", "projects": sorted(projects.values()),
                                                           "roles": ["pipeline"]}), 201)["token"]
    return Setup(password, token, projects, pipeline)


class ReadingRoom(threading.Thread):
    """Simulated readers of one project: they start once the pipeline's wait for the project's round
    has deferred (read from Airflow's log, as it is written; without a log file, once the round is
    open) and work their queues to the end."""

    def __init__(self, service: Service, setup: Setup, project: str, readers: str, truth: Mapping[str, Any],
                 airflow_log: Path | None) -> None:
        super().__init__(daemon=True, name=f"readers-{project}")
        self.service, self.setup, self.project, self.readers = service, setup, project, readers
        self.truth, self.airflow_log = truth, airflow_log
        self.stop = threading.Event()
        self.result: Any = None
        self.error: str | None = None
        self.deferred = False

    def _ready(self) -> bool:
        """The project's round is open with items on the service and, with a log to read, the wait
        for it has deferred (the log is this run's: `run` removes the last one before starting)."""
        project_id = self.setup.projects[self.project]
        with httpx.Client(base_url=self.service.url, timeout=30,
                          headers={"Authorization": f"Bearer {self.setup.admin_token}"}) as c:
            if not any(r["state"] == "open" and r["items"] for r in _ok(c.get(f"/api/projects/{project_id}/rounds"))):
                return False
        if self.airflow_log is None:
            return True
        try:
            text = self.airflow_log.read_text(errors="replace")
        except OSError:
            return False
        self.deferred = re.search(rf"deferring until round \d+ of project {project_id}\b", text) is not None
        return self.deferred

    def run(self) -> None:
        from synth.reader_client import simulate
        from synth.readers import parse_readers

        try:
            while not self.stop.is_set() and not self._ready():
                time.sleep(0.5)
            if self.stop.is_set():
                return
            self.result = simulate(self.service.url, self.project, parse_readers(self.readers), READER_SEED,
                                   self.truth, admin_token=self.setup.admin_token, progress=lambda _msg: None)
        except Exception as exc:  # noqa: BLE001 - reported in the summary
            self.error = f"{type(exc).__name__}: {exc}"
            self._close_open_rounds()

    def _close_open_rounds(self) -> None:
        """Readers that failed read no more: close the project's open rounds (as a manager would), so
        the pipeline's wait ends now and goes on with what was read instead of waiting for the deadline."""
        project_id = self.setup.projects[self.project]
        try:
            with httpx.Client(base_url=self.service.url, timeout=30,
                              headers={"Authorization": f"Bearer {self.setup.admin_token}"}) as c:
                for r in _ok(c.get(f"/api/projects/{project_id}/rounds")):
                    if r["state"] != "closed":
                        _ok(c.post(f"/api/projects/{project_id}/rounds/{r['number']}/close"))
        except (httpx.HTTPError, RuntimeError) as exc:
            self.error += f"; closing the round failed too: {exc}"


def site_truth(site_dir: Path) -> dict[str, Any]:
    """The site's truth per item key, re-keyed with the store's pseudonymisation secret (DICOM) and
    found in the store's deid zone by content (pictures and volumes)."""
    from curation.reid_vault import store_secret
    from curation.settings import settings
    from curation.store import Zone, open_store
    from synth.reader_truth import truth_from_site

    store = open_store(settings().store_location)
    probe = store.local_path(Zone.DEID, "x")
    return truth_from_site(site_dir, store_secret(store), probe.parent if probe is not None else None)


def round_conf(sample_size: int | None, model: str | None = None) -> dict[str, Any]:
    """The labels round's DAG conf; `model` None keeps the DAG's findings model, "" runs none."""
    return {**({} if model is None else {"model": model}), "project": LABELS_PROJECT, "label_schema": LABEL_SCHEMA, "series_kinds": CHEST_KINDS,
            "body_parts": CHEST_OR_UNKNOWN, "quality_decisions": READ_DECISIONS, "exclude_read": False,
            "sample_size": sample_size, "seed": READER_SEED, "readers_per_item": 5, "gold_share": 0.0,
            "deadline_hours": 1.0, "poll_seconds": 1, "bootstrap_resamples": 500,
            "review_project": REVIEW_PROJECT, "review_readers_per_item": 3}


def run(site_dir: Path | None, home: Path, *, truth: Mapping[str, Any] | None = None, verbose: bool = False,
        serve: bool = False, model: str | None = None,
        say: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)) -> dict[str, Any]:
    """Start the service, run `annotation_round` with simulated readers answering from the truth of
    `site_dir` (or `truth` per item key, `synth.reader_truth`), and return the summary (see
    `summarise`); with `serve`, leave the service running for `serve_until_interrupted`. `model`:
    the findings model of the round (None: the DAG's default; "": none, for images that do not show
    the truth's findings, where the model's calls would be noise the QC filter judges readers by)."""
    from curate.demo import run_quietly

    started = time.monotonic()
    logging.getLogger("alembic").setLevel(logging.WARNING)  # migrations of the service DB and the catalog
    folder = home / "demo" / "annotation"
    service = Service.start(folder)
    readers: list[ReadingRoom] = []
    try:
        setup = set_up(service)
        say(f"demo: annotation service on {service.url} (its log: {service.log_path})")
        if truth is None:
            truth = site_truth(site_dir)
        before = _last_round_id()
        os.environ["AIRFLOW_CONN_CURATE_ANNOTATION"] = setup.connection(service.url)
        log_path = (home / "demo" / "annotation_round.log").resolve()
        log_path.unlink(missing_ok=True)  # the readers watch it for this run's deferral
        watch = None if verbose else log_path
        readers = [ReadingRoom(service, setup, LABELS_PROJECT, READERS, truth, watch),
                   ReadingRoom(service, setup, REVIEW_PROJECT, REVIEWERS, truth, watch)]
        for room in readers:
            room.start()
        say(f"demo: running {DAG_ID} under dag.test() with simulated readers ({READERS}; quality review "
            f"{REVIEWERS}); its full log: {log_path}")
        state = run_quietly(DAG_ID, round_conf(MAX_ITEMS, model), log_path, verbose=verbose)
        for room in readers:
            room.stop.set()
            room.join(timeout=60)
        summary = summarise(truth, setup, service, readers, state, before)
        summary["seconds"] = round(time.monotonic() - started, 1)
        say(f"demo: annotation half (service, round, review, summary) in {summary['seconds']} s")
        return summary
    finally:
        for room in readers:
            room.stop.set()
        if not serve:
            service.stop()
        else:
            _service_kept[0] = service


#: The service `run(serve=True)` left running, for `serve_until_interrupted`.
_service_kept: list[Service | None] = [None]


def serve_until_interrupted(say: Callable[[str], None]) -> None:
    service = _service_kept[0]
    if service is None:
        return
    say(f"demo: the annotation service keeps running on {service.url}; Ctrl-C stops it")
    try:
        while service.proc.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()
        _service_kept[0] = None


def newest_id(model: Any) -> int:
    """The catalog's newest id of `model` (rounds, ledger events): rows above it are this demo run's."""
    from sqlalchemy import func, select

    from curation.catalog import Catalog

    catalog = Catalog()
    try:
        with catalog.session() as s:
            return int(s.scalar(select(func.max(model.id))) or 0)
    finally:
        catalog.dispose()


def _last_round_id() -> int:
    from curation.catalog.models import AnnotationRound

    return newest_id(AnnotationRound)


def _newest_round(catalog: Any, project: str, after: int) -> Any:
    """This run's round of `project` (id above `after`), or None when the DAG skipped it."""
    from sqlalchemy import select

    from curation.catalog.models import AnnotationRound

    with catalog.session() as s:
        found = s.scalars(select(AnnotationRound).where(AnnotationRound.project == project, AnnotationRound.id > after)
                          .order_by(AnnotationRound.id.desc()).limit(1)).first()
        if found is not None:
            s.expunge(found)
        return found


def _present(truth: Any, label: str) -> bool | None:
    t = (truth or {}).get(label)
    return getattr(t, "present", None)


def consensus_against_truth(catalog: Any, round_id: int, truth: Mapping[str, Any]) -> dict[str, Any]:
    """Dawid-Skene consensus of every yes/no label against the site's truth (accuracy overall and per
    label), and each consensus box's IoU with the nearest truth region of its finding."""
    from curation.agreement.roi import box_iou
    from curation.annotation_schema import load_schema
    from curation.pipeline.analyse import BOX, DAWID_SKENE, consensus_labels

    yes_no = consensus_labels(catalog, round_id, DAWID_SKENE)
    right: dict[str, list[bool]] = {}
    for row in yes_no.to_dict(orient="records"):
        present = _present(truth.get(row["item"]), row["label"])
        if present is not None and row["value"] is not None:
            right.setdefault(row["label"], []).append(bool(row["value"]) == present)
    regions = load_schema(LABEL_SCHEMA).regions
    ious = []
    for row in consensus_labels(catalog, round_id, BOX).to_dict(orient="records"):
        t = (truth.get(row["item"]) or {}).get(regions.get(row["label"], ""))
        boxes = [(r.box[0], r.box[1], r.box[0] + r.box[2], r.box[1] + r.box[3]) for r in getattr(t, "regions", ())]
        if boxes:
            ious.append(max(box_iou((row["x0"], row["y0"], row["x1"], row["y1"]), b) for b in boxes))
    every = [v for values in right.values() for v in values]
    return {"consensus_accuracy": round(sum(every) / len(every), 4) if every else None,
            "consensus_answers": len(every),
            "consensus_accuracy_per_label": {k: round(sum(v) / len(v), 4) for k, v in sorted(right.items())},
            "consensus_boxes": len(ious),
            "box_iou_median": round(statistics.median(ious), 3) if ious else None}


def _labels_round(catalog: Any, truth: Mapping[str, Any], room: ReadingRoom, secret: bytes,
                  after: int) -> dict[str, Any]:
    from curation.pipeline.analyse import reader_reports
    from curation.pipeline.collect import reader_pseudonym
    from synth.readers import parse_readers

    rnd = _newest_round(catalog, LABELS_PROJECT, after)
    out: dict[str, Any] = {"project": LABELS_PROJECT, "schema": LABEL_SCHEMA, "readers_spec": READERS,
                           "wait_deferred_while_reading": room.deferred, "reader_errors": room.error}
    if rnd is None:
        return {**out, "state": "not dispatched"}
    s = rnd.summary or {}
    reports = reader_reports(catalog, rnd.id)
    done = room.result.to_json()["readers"] if room.result is not None else {}
    readers = {}
    for spec in parse_readers(READERS):
        pseudonym = reader_pseudonym(spec.username, secret)
        r = reports.get(pseudonym, {})
        readers[spec.username] = {"profile": spec.profile.name, "pseudonym": pseudonym,
                                  "readings": (done.get(spec.username) or {}).get("tasks_done", 0),
                                  "answers": r.get("n_readings", 0), "qc_flags": r.get("qc_flags", []),
                                  "passes_qc": r.get("passes_qc"), "reward": round(float(r.get("reward") or 0.0), 2),
                                  "reasons": r.get("reasons", [])}
    rewards = s.get("rewards") or {}
    return {**out, "state": rnd.state, "round_id": rnd.id, "service_round": rnd.service_round_number,
            "items": s.get("items", rnd.n_items), "readings": sum(r["readings"] for r in readers.values()),
            "answers": s.get("answers"),
            "regions": s.get("regions"), "readers": readers,
            **{k: s.get(k) for k in ("fleiss_kappa", "fleiss_kappa_ci95", "krippendorff_alpha",
                                     "krippendorff_alpha_ci95")},
            "readers_excluded": len(s.get("readers_excluded") or []),
            "reward_budget": rewards.get("budget"), "rewards_unpaid": rewards.get("unpaid"),
            **consensus_against_truth(catalog, rnd.id, truth)}


def _reviewed_series(catalog: Any, truth: Mapping[str, Any], round_id: int | None) -> tuple[list[dict[str, Any]], int]:
    """Per series people reviewed (in round `round_id`, or in any round): kind, the model's decision,
    the final (people's) decision and reason, reviewers, the planted defect's verdict; and the number
    of decisions."""
    from sqlalchemy import select

    from curation.catalog.models import QualityReview
    from curation.pipeline.select import final_decisions, model_decision, newest_records

    query = select(QualityReview.series_id, QualityReview.series_key)
    if round_id is not None:
        query = query.where(QualityReview.round_id == round_id)
    with catalog.session() as s:
        rows = s.execute(query).all()
    keys = dict(rows)
    finals = final_decisions(catalog, list(keys))
    quality = newest_records(catalog, "quality", list(keys))
    classify = newest_records(catalog, "classify", list(keys))
    series = []
    for sid in sorted(keys):
        t = (truth.get(keys[sid]) or {}).get("quality")
        series.append({"series": f"series #{sid}",
                       "kind": (classify[sid].metrics or {}).get("kind") if sid in classify else None,
                       "model": model_decision(quality.get(sid)), "human": finals[sid].decision,
                       "reason": finals[sid].reason, "reviewers": len(finals[sid].reviewers),
                       "truth": getattr(t, "decision", None)})
    return series, len(rows)


def _quality_review(catalog: Any, truth: Mapping[str, Any], room: ReadingRoom, after: int) -> dict[str, Any]:
    rnd = _newest_round(catalog, REVIEW_PROJECT, after)
    out: dict[str, Any] = {"project": REVIEW_PROJECT, "readers_spec": REVIEWERS,
                           "wait_deferred_while_reading": room.deferred, "reader_errors": room.error}
    if rnd is None:
        # the DAG skips the round when no series waits for a person: show what people decided before
        earlier, _ = _reviewed_series(catalog, truth, None)
        return {**out, "state": "nothing to review", "items": 0, "readings": 0, "series": earlier,
                "note": "no series waits for a quality review" + (
                    f": the {len(earlier)} the model sent to review were decided by people in an earlier demo "
                    "run (curate demo --fresh starts over); their final decisions:" if earlier else "")}
    series, decisions = _reviewed_series(catalog, truth, rnd.id)
    agree = [x["human"] == x["truth"] for x in series if x["truth"]]
    return {**out, "state": rnd.state, "round_id": rnd.id, "items": len(series), "readings": decisions,
            "by_decision": (rnd.summary or {}).get("by_decision"), "series": series,
            "human_matches_truth": f"{sum(agree)}/{len(agree)}" if agree else None}


def summarise(truth: Mapping[str, Any], setup: Setup, service: Service, rooms: list[ReadingRoom],
              state: str, after: int) -> dict[str, Any]:
    """The round as a project manager reads it (readers by their demo account name and profile, with
    the pseudonym the catalog keeps; series by catalog id), the review, and the viewer's login."""
    from curation.catalog import Catalog
    from curation.reid_vault import store_secret
    from curation.settings import settings
    from curation.store import open_store

    catalog = Catalog()
    secret = store_secret(open_store(settings().store_location))
    try:
        labels = _labels_round(catalog, truth, rooms[0], secret, after)
        review = _quality_review(catalog, truth, rooms[1], after)
    finally:
        catalog.dispose()
    project = setup.projects[LABELS_PROJECT]
    return {"dag_state": state, "annotation_round": labels, "quality_review": review,
            "viewer": {"url": f"{service.url}/", "round": f"{service.url}/#/review/{project}",
                       "quality_review": f"{service.url}/#/review/{setup.projects[REVIEW_PROJECT]}",
                       "username": ADMIN, "password": setup.password}}


def with_ci(value: Any, ci: Any) -> str:
    """A statistic with its 95% confidence interval, when there is one (agreement in the demo's report)."""
    if value is None:
        return "n/a"
    text = f"{value:.3f}"
    return text + (f" (95% CI {ci[0]:.3f} to {ci[1]:.3f})" if isinstance(ci, (list, tuple)) and None not in ci else "")


def format_summary(summary: Mapping[str, Any], serve: bool = False) -> str:
    """The annotation part of the demo's report, for a terminal."""
    a, q, v = summary["annotation_round"], summary["quality_review"], summary["viewer"]
    lines = [f"\n== Annotation round ({a['project']}, {a['schema']}; {DAG_ID} {summary['dag_state']}) =="]
    if "readers" not in a:
        lines.append(f"  {a['state']}")
    else:
        lines.append(f"  {a['items']} items read by {len(a['readers'])} simulated readers ({a['readers_spec']}): "
                     f"{a['readings']} readings, {a['answers']} yes/no answers, {a['regions']} boxes; the wait "
                     + ("deferred to the trigger while they read" if a["wait_deferred_while_reading"] else "ended"))
        lines.append(f"  {'reader':<16}{'profile':<9}{'readings':>9}{'answers':>8}  {'QC':<8}{'reward':>7}  "
                     "flags (reasons)")
        for name, r in a["readers"].items():
            why = "; ".join(r["reasons"])
            lines.append(f"  {name:<16}{r['profile']:<9}{r['readings']:>9}{r['answers']:>8}  "
                         f"{'pass' if r['passes_qc'] else 'EXCLUDED':<8}"
                         f"{r['reward']:>7.2f}  {', '.join(r['qc_flags']) or '-'}" + (f" ({why})" if why else ""))
        lines.append(f"  agreement of the readers QC kept: Fleiss' kappa {with_ci(a['fleiss_kappa'], a['fleiss_kappa_ci95'])}; "
                     f"Krippendorff's alpha {with_ci(a['krippendorff_alpha'], a['krippendorff_alpha_ci95'])}")
        per = ", ".join(f"{k} {v:.2f}" for k, v in a["consensus_accuracy_per_label"].items())
        acc = a["consensus_accuracy"]
        lines.append(f"  consensus (Dawid-Skene) against the ground truth: accuracy "
                     f"{'n/a' if acc is None else f'{acc:.3f}'} on {a['consensus_answers']} answers ({per}); "
                     f"{a['consensus_boxes']} consensus boxes, median IoU with the truth "
                     f"{a['box_iou_median'] if a['box_iou_median'] is not None else 'n/a'}")
        lines.append(f"  rewards: budget {a['reward_budget']} split among the readers QC kept"
                     + (f" (unpaid: {a['rewards_unpaid']})" if a["rewards_unpaid"] else ""))
    if a.get("reader_errors"):
        lines.append(f"  readers stopped on an error: {a['reader_errors']}")
    lines.append(f"\n== Quality review ({q['project']}) ==")
    if "note" in q:
        lines.append(f"  {q['note']}")
    else:
        lines.append(f"  {q['items']} series the quality model sent to review, {q['readings']} decisions by "
                     f"{q['readers_spec']} simulated reviewers; final decisions {q['by_decision']} "
                     f"(matching the planted defects: {q['human_matches_truth']})")
    for x in q.get("series", []):
        lines.append(f"  {x['series']:<11} {str(x.get('kind') or ''):<12} model {str(x.get('model') or '-'):<7} -> "
                     f"people {x['human']:<10} {x.get('reason') or ''}"
                     + (f" [truth: {x['truth']}]" if x.get("truth") else ""))
    if q.get("reader_errors"):
        lines.append(f"  reviewers stopped on an error: {q['reader_errors']}")
    lines.append(f"\n== Viewer: {v['round']} (round review), {v['quality_review']} (quality review); "
                 f"login {v['username']} / {v['password']}"
                 + (" ==" if serve else "; the service stops with the demo, `curate demo --serve` keeps it ==")
                 )
    return "\n".join(lines)


__all__ = ["Service", "format_summary", "run", "serve_until_interrupted", "newest_id", "summarise", "with_ci"]
