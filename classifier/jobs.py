"""The life of a classification job: claimed by one worker (alone, or with the announced jobs of
its batch), released, re-queued by the sweep when stuck, and ended once with its outcome, each
by a conditional update that only the job's current state allows. Whoever waits for a job is
woken when it ends (`classifier.notify`)."""

import logging
import re
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from classifier import notify

log = logging.getLogger(__name__)


def signal_ended(pks: list):
    """Wake requests waiting for these jobs; a lost signal only means they wait out their time."""
    if not pks:
        return
    try:
        notify.jobs_ended(pks)
    except Exception as exc:  # Redis or the disk: the outcomes are stored, which is what matters
        log.warning("could not signal the end of jobs %s: %s", ", ".join(map(str, pks)), exc)


class JobStates:
    """The job-state methods of Classification (its Status choices, conditional updates and
    plain-document reads)."""

    def claim(self, stale_before=None, worker: str = "") -> bool:
        """Take the job for this worker: queued, or running but abandoned (started before
        `stale_before`, i.e. its worker died). One conditional update: only one worker wins."""
        claimable = [{"status": self.Status.QUEUED}]
        if stale_before is not None:
            claimable.append({"status": self.Status.RUNNING, "started_at": {"$lt": stale_before}})
        increment, changes = self.claiming(worker)
        # One plain condition at a time: with $or the embedded engine scans every job.
        return any(self.transition(condition, increment, **changes) for condition in claimable)

    @classmethod
    def claiming(cls, worker: str = "") -> tuple:
        """(increment, changes) of a claim, under a token of its own that starts with the
        claiming worker's name (see `abandoned`)."""
        token = f"{worker}/{uuid.uuid4().hex}"
        return ["attempts"], {
            "status": cls.Status.RUNNING,
            "started_at": timezone.now(),
            "claim_token": token,
        }

    @classmethod
    def abandoned(cls, worker: str) -> list:
        """The jobs still running under claims of `worker` (a Celery worker's unique name): as
        it starts, those are what an earlier process of it held when it died."""
        found = connection.database[cls._meta.db_table].find(
            {"status": cls.Status.RUNNING, "claim_token": {"$regex": f"^{re.escape(worker)}/"}},
            {"_id": 1},
        )
        return cls.by_pks([each["_id"] for each in found])

    @classmethod
    def queued_ids(cls) -> list[str]:
        """The ids of every queued job, oldest first (the (status, queued_at) index's order)."""
        found = connection.database[cls._meta.db_table].find(
            {"status": cls.Status.QUEUED}, {"_id": 1}, sort=[("queued_at", 1)]
        )
        return [str(each["_id"]) for each in found]

    @classmethod
    def claim_announced(cls, pks, worker: str = "") -> list:
        """The queued jobs among `pks` (announced ones, oldest first), each claimed as `claim`
        does, by one update of them all; the read after it tells the jobs this claim won by
        their token. The worker runs them in one batch with its own. One update_many: an update
        per job kept a batch waiting for its claims under load."""
        increment, changes = cls.claiming(worker)
        ids = [cls._meta.pk.to_python(pk) for pk in pks]
        connection.database[cls._meta.db_table].update_many(
            {"_id": {"$in": ids}, "status": cls.Status.QUEUED}, cls._update(increment, changes)
        )
        won = {job.pk: job for job in cls.by_pks(ids) if job.claim_token == changes["claim_token"]}
        return [won[pk] for pk in ids if pk in won]

    @classmethod
    def stuck(cls, time_limit: timedelta) -> list:
        """Jobs running for longer than `time_limit`, or queued for twice as long. Both queries
        ride the (status, queued_at) index: the queued by its range, the running by their
        status alone (a few batches' worth at any time), their start checked here. Written by
        hand: the ORM spells `__lt` as an $and with $exists and $ne guards, which the embedded
        engine answers by scanning every job."""
        now = timezone.now()
        collection = connection.database[cls._meta.db_table]
        queued = collection.find(
            {"status": cls.Status.QUEUED, "queued_at": {"$lt": now - 2 * time_limit}}, {"_id": 1}
        )
        running = collection.find({"status": cls.Status.RUNNING}, {"_id": 1, "started_at": 1})
        ids = [found["_id"] for found in queued]
        stale_before = (now - time_limit).replace(tzinfo=None)  # pymongo reads naive UTC datetimes
        ids += [
            found["_id"]
            for found in running
            if found["started_at"] is None or found["started_at"] < stale_before
        ]
        return cls.by_pks(ids) if ids else []

    def requeue(self) -> bool:
        """Send a stuck job again (True), or fail it once it has been sent or started too
        often (False). Conditional on the status it was found in, so a job that moved on
        meanwhile is left alone."""
        now = timezone.now()
        found = {"status": self.status}
        if (
            self.requeues >= settings.SWEEP_MAX_REQUEUES
            or self.attempts >= settings.CLASSIFY_MAX_ATTEMPTS
        ):
            if self.transition(
                found,
                status=self.Status.FAILED,
                finished_at=now,
                error="The job did not finish in time and was abandoned.",
            ):
                signal_ended([self.pk])
            return False
        return self.transition(
            found, increment=["requeues"], status=self.Status.QUEUED, queued_at=now
        )

    def release(self) -> bool:
        """Give a running job back to the queue (a retry, or a batch companion's second chance)."""
        return self.transition(
            {"status": self.Status.RUNNING}, status=self.Status.QUEUED, queued_at=timezone.now()
        )

    def finishing(
        self, version, probabilities, predictions, timings, thumbnail_key: str, ood_score: float
    ) -> tuple:
        """The end of this job with its result by `version` (a ModelVersion), for `end_many`."""
        top = predictions[0]
        return self, dict(
            thumbnail_key=thumbnail_key,
            status=self.Status.DONE,
            model_version=version,
            model_name=str(version),
            class_names=list(version.class_names),
            probabilities=[float(p) for p in probabilities],
            predictions=predictions,
            top_label=top["label"],
            top_probability=top["probability"],
            ood_score=float(ood_score),
            timings=timings,
            error="",
        )

    def fail(self, reason: str) -> bool:
        return self.end_many([(self, {"status": self.Status.FAILED, "error": reason[:1000]})])[0]

    @classmethod
    def end_many(cls, endings: list) -> list[bool]:
        """Record the outcomes, (job, fields) pairs, but each only over a job that is still
        running (never twice); wake whoever waits for the jobs that ended here."""
        now = timezone.now()
        moves = [
            (job, {"status": cls.Status.RUNNING}, (), {**fields, "finished_at": now})
            for job, fields in endings
        ]
        ended = cls.transition_many(moves)
        signal_ended([job.pk for (job, _), done in zip(endings, ended) if done])
        return ended
