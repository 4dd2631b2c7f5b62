"""Training: how one design is judged, without Ray.

`proxy` (the proxy profiles of proxies.yaml: resolution, width, epochs, recipe), `trial`
(`train_trial`: one design's proxy trained and evaluated after every epoch, with the memory
and resolution checks that come before it) and `data/` (the datasets, one module per source).
The search runs `train_trial` inside Ray workers, the CLI runs it directly, and the tests run
it on its own. It builds on `design` and on nothing above it.
"""
