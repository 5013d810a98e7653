"""Data: the pose store, importers of existing pose formats, annotations and partitions.

`PoseStore` holds raw COCO-WholeBody poses; `annotations` reads label files into manifest rows;
`partitions` builds the control / signer-independent / unseen-sentence splits.
"""

from __future__ import annotations

from nmmfast.data.store import PoseStore, StoreError

__all__ = ["PoseStore", "StoreError"]
