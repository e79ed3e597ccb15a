"""Plugin registration of the walking differ (``io.containerd.differ.v1.walking``)."""

from __future__ import annotations

from pycontainerd import plugin
from pycontainerd.diff.walking import WalkingDiffer
from pycontainerd.metadata.store import MetadataStore
from pycontainerd.remotes.platforms import default_platform

PLUGIN_ID = "walking"


@plugin.register(plugin.DIFF, PLUGIN_ID, requires=(plugin.METADATA,))
def init_walking(ic: plugin.InitContext) -> WalkingDiffer:
    metadata: MetadataStore = ic.get(plugin.METADATA)
    differ = WalkingDiffer(metadata.content, ic.root / "tmpmounts")
    differ.cleanup()
    ic.platforms.append(default_platform().to_dict())
    return differ
