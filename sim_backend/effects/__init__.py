"""The non-idealities of fabricated devices: heating, bias field, drift, telegraph noise, pinned reversals."""
