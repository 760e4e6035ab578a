"""Writers of what leaves WeakSeg: compact model bundles for shipping."""
