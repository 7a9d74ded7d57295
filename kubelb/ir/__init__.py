"""The data-plane-neutral intermediate representation (`proxy`) and its YAML/dict form (`codec`)."""
