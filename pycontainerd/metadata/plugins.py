"""Plugin registrations of the content store, the metadata store and GC."""

from __future__ import annotations

from typing import Any

from pycontainerd import plugin
from pycontainerd.config import number_setting
from pycontainerd.content.store import LocalContentStore
from pycontainerd.metadata.db import Database
from pycontainerd.metadata.gc import Collector, Sweep
from pycontainerd.metadata.scheduler import GCScheduler
from pycontainerd.metadata.store import MetadataStore


@plugin.register(plugin.CONTENT, "content")
def init_content(ic: plugin.InitContext) -> LocalContentStore:
    ic.exports["root"] = str(ic.root)
    return LocalContentStore(ic.root)


@plugin.register(plugin.METADATA, "sqlite", requires=(plugin.CONTENT, plugin.SNAPSHOTTER))
def init_metadata(ic: plugin.InitContext) -> MetadataStore:
    ic.exports["database"] = str(ic.root / "meta.db")
    ic.make_dirs(ic.root)
    metadata = MetadataStore(
        Database(ic.root / "meta.db"),
        ic.get(plugin.CONTENT, "content"),
        ic.get_all(plugin.SNAPSHOTTER),
    )
    metadata.snapshots.reconcile()
    return metadata


def _duration(value: Any) -> float:
    """A Go-style duration ("100ms", "1s", "5m") or a number of seconds."""
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    for suffix, scale in (("ms", 1e-3), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(text[: -len(suffix)]) * scale
    raise ValueError(f"{value!r} is not a duration (use e.g. 100ms, 1s, 5m)")


@plugin.register(
    plugin.GC,
    "scheduler",
    requires=(plugin.METADATA,),
    config={
        "pause_threshold": 0.02,
        "schedule_delay": "0s",
        "startup_delay": "0s",
        "interval": "1h",
    },
)
async def init_gc(ic: plugin.InitContext) -> GCScheduler:
    metadata: MetadataStore = ic.get(plugin.METADATA)
    scheduler = GCScheduler(
        metadata.db,
        metadata.collector,
        schedule_delay=_duration(ic.config["schedule_delay"]),
        startup_delay=_duration(ic.config["startup_delay"]),
        interval=_duration(ic.config["interval"]),
        # A share of the time, as containerd bounds it; 0 collects at once every time.
        pause_threshold=number_setting(
            "io.containerd.gc.v1.scheduler", ic.config, "pause_threshold", minimum=0, maximum=0.5
        ),
    )

    def sweep_blobs(collector: Collector, sweep: Sweep) -> None:
        metadata.content.sweep_unreferenced(collector.referenced_digests)

    scheduler.add_sweeper(sweep_blobs)
    scheduler.add_sweeper(metadata.snapshots.sweep)
    await scheduler.start()
    return scheduler
