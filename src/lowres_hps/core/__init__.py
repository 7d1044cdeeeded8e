"""The foundation every other package may use and which uses none of them: YAML configs read into
dataclasses (:mod:`~lowres_hps.core.config`), crash-safe file writes (:mod:`~lowres_hps.core.io`) and shape
checks at API boundaries (:mod:`~lowres_hps.core.checks`)."""
