"""Latency-aware architecture search: spaces of the searchable family, an Optuna study stored
in the search folder, trials built and timed through the sweep engine on Ray."""
