"""Every architecture of edgecnn, built by name through one registry.

    model = create_model("mobilenet_v2", num_classes=10, cifar_stem=True)
    model.card.params, model.card.macs()
"""

from edgecnn.models.registry import (
    FAMILIES,
    ModelCard,
    ModelSpec,
    create_model,
    get_spec,
    list_models,
    register_model,
)

__all__ = [
    "FAMILIES",
    "ModelCard",
    "ModelSpec",
    "create_model",
    "get_spec",
    "list_models",
    "register_model",
]
