"""Processed data sets moved whole to the device, one module per layout, outside `replab.data`: the download and
prepare stages depend on all of `src/replab/data`, and a loader edit should rerun only the papers that read it."""
