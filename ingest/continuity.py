"""R4, R5: the pauses between consecutive clips of one recorder, as explanations to write.

Clips are the recordings stored as playable video whose length the prober measured.
A damaged clip in quarantine, or one not docked yet, is not a clip, so an explanation
says only that no stored playable clip fills the pause. Each dock looks at its own clips
and at the device's clips already stored around them (a day and ``gap_max_s`` either
side), so a pause across two docks is found by the second, and none is found twice.
Times are the recorder's clock less the offset measured at each dock (where one was).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from ingest.dock import IngestContext, IngestOptions
from ingest.mediatypes import is_clip
from ingest.rules import Clip, gaps
from storage.catalog import Catalog
from storage.models import Explanation, Recording
from storage.terms import LogFilter


@dataclass(frozen=True)
class GapFound:
    kind: str  # recording_gap (R4) or continuity_violation (R5)
    path: str  # the clip after the pause, on the recorder
    device: str
    recording_id: int  # the clip after the pause
    related_recording_id: int  # the clip before it
    error: str
    action: str


def _clip(r: Recording) -> bool:
    return r.state == "stored" and r.duration_s is not None and is_clip(r.source_path)


def gaps_of_session(catalog: Catalog, session_id: str, opts: IngestOptions) -> list[GapFound]:
    return list(_gaps(catalog, session_id, opts))


def _gaps(catalog: Catalog, session_id: str, opts: IngestOptions) -> Iterator[GapFound]:
    mine = [r for r in catalog.recordings(LogFilter(session=session_id)) if _clip(r)]
    reach = timedelta(days=1, seconds=opts.gap_max_s)
    for device in sorted({r.device_no for r in mine}):
        new = [r for r in mine if r.device_no == device]
        around = [r for r in catalog.recordings(LogFilter(
            device=device, since=min(r.recording_start for r in new) - reach,
            until=max(r.recording_end for r in new) + reach)) if _clip(r)]
        paths = {r.id: r.source_path for r in around}
        clips = [Clip(r.id or 0, r.recording_start, r.recording_end, r.important,
                      r.session_id == session_id) for r in around]
        for gap in gaps(clips, opts.gap_tolerance_s, opts.gap_max_s):
            before, after = gap.before, gap.after
            yield GapFound(
                kind="continuity_violation" if gap.violation else "recording_gap",
                path=paths[after.id], device=device, recording_id=after.id,
                related_recording_id=before.id,
                error=f"{gap.seconds:.0f} s with no stored playable clip of this recorder "
                      f"between recording {before.id} (ended {before.end:%Y-%m-%d %H:%M:%S} "
                      f"UTC) and recording {after.id} (started "
                      f"{after.start:%Y-%m-%d %H:%M:%S} UTC), by the recorder's clock as corrected "
                      "at each dock where its offset was measured"
                      + (", around an important-event recording" if gap.violation else ""),
                action="both recordings are stored; officers must state why recording "
                       "stopped, and two or more sign"
                       + (" (R5: this action had to be recorded without a break)"
                          if gap.violation else ""))


def escalate(st: IngestContext, rec: Recording) -> list[tuple[Explanation, Explanation]]:
    """R5 for a recording just given a category that must be recorded without a break:
    each gap explanation about it (after or before the gap) gets a continuity_violation,
    once; returns (the gap, the violation) pairs written."""
    about = [e for e in st.catalog.explanations() if rec.id in (
        e.recording_id, e.related_recording_id)]
    done = {(e.recording_id, e.related_recording_id) for e in about
            if e.kind == "continuity_violation"}
    written = []
    for gap in (e for e in about if e.kind == "recording_gap"):
        if (gap.recording_id, gap.related_recording_id) in done:
            continue
        violation = st.record_explanation(Explanation(
            session_id=gap.session_id, recording_id=gap.recording_id,
            related_recording_id=gap.related_recording_id, kind="continuity_violation",
            rule="R5", device_no=gap.device_no, source_path=gap.source_path,
            occurred_at=st.clock(),
            error=f"the gap of explanation {gap.id} ({gap.error}) touches recording {rec.id}, "
                  f"of category {rec.category}, which must be recorded without a break",
            action="both recordings are stored; officers must state why recording stopped, "
                   "and two or more sign (R5)"))
        done.add((gap.recording_id, gap.related_recording_id))
        written.append((gap, violation))
    return written
