"""Editing a config mapping at a key path, as the validation tests do."""

import copy


def edited(raw, path, value):
    """A deep copy of ``raw`` with ``path`` set to ``value`` (``KeyError`` as the value deletes the key)."""
    out = copy.deepcopy(raw)
    node = out
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out
