"""Finding the installed findings models: the entry point group `curate.findings_models`, name ->
zero-argument factory returning a `FindingsModel`. The shipped chest model is declared in the
platform's pyproject.toml; a site's own model declares an entry point in the same group in its own
package, and `pip install` is all it takes for the pipeline to find it by name.
"""
from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from curation.assist.plugin import FindingsModel

GROUP = "curate.findings_models"


class ModelNotFound(LookupError):
    """No installed package declares a findings model by that name, or the one declared cannot be
    imported or built (its module or weights missing): either way there is no model to run."""


def available() -> dict[str, EntryPoint]:
    """Installed findings models by name (the first distribution wins when two declare one name)."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=GROUP):
        found.setdefault(ep.name, ep)
    return found


def load_model(name: str) -> FindingsModel:
    """The model `name`, built by its factory; refuses a factory that does not return a findings model."""
    eps = available()
    if name not in eps:
        raise ModelNotFound(f"no findings model {name!r} is installed (entry point group {GROUP}); "
                            f"installed: {sorted(eps) or 'none'}")
    try:
        factory = eps[name].load()
    except ImportError as exc:  # declared by an installed package whose module is absent or broken
        raise ModelNotFound(f"findings model {name!r} is declared ({eps[name].value}) but cannot be imported: "
                            f"{type(exc).__name__}: {exc}") from exc
    try:
        model = factory()
    except Exception as exc:  # noqa: BLE001 - a plugin's own errors (weights missing, bad card): not loadable
        raise ModelNotFound(f"findings model {name!r} ({eps[name].value}) could not be built: "
                            f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(model, FindingsModel):
        raise TypeError(f"findings model {name!r} ({eps[name].value}) returned {type(model).__name__}, which has "
                        "no `info` and `predict(batch)`")
    return model


__all__ = ["GROUP", "ModelNotFound", "available", "load_model"]
