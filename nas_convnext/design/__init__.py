"""Designs: what a network is, before anything trains it.

`arch` (the `Arch` dataclass, its presets and the rules a design obeys), `codec` (the one
encoding of a design's values as Optuna parameters, table cells, labels and `key=value`
words), `plan` (the layer plan the builder and the counter share), `build` (torch modules),
`complexity` (analytic FLOPs, parameters and activations; budgets and width fitting),
`space` (design spaces from YAML) and `roadmap` (the paper's 17 steps, as data).

Nothing here imports the other parts of the package: training, search, analysis and report
all build on it.
"""
