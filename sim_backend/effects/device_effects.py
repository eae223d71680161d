"""The ``effects:`` section of a chip file: which non-idealities the Hall bars have, and their settings.

Each effect is a small class with one job (its module says what it models and where its defaults come from):

| section | class | what it does |
| --- | --- | --- |
| ``temperature`` | :class:`MagnetTemperature` | how Δ, Ic0, ΔR_AHE and R_ch follow the temperature (always on) |
| ``joule_heating`` | :class:`JouleHeating` | the temperature a pulse drives the bar to, with its thermal lag |
| ``bias_field`` | :class:`BiasField` | chirality and Ic0 from the station's in-plane field |
| ``drift`` | :class:`ParameterDrift` | Ic0 and Δ wander with time, wear with pulses, follow the room |
| ``telegraph_noise`` | :class:`TelegraphNoise` | a two-level fluctuator on each Hall reading |
| ``reversal_pinning`` | :class:`ReversalPinning` | reversals (and resets) that fail at a pinning site |

``short_pulses``: below ``min_width`` the Néel–Brown closed form is not trusted; ``model: refuse`` makes such a pulse
an error naming it, ``macrospin`` hands it to the stochastic LLG (:mod:`sim_backend.macrospin`), ``closed_form``
keeps the textbook idealization (as a chip without ``effects:`` does).

A section is ``false`` (off), ``true`` (on, defaults) or a mapping with ``enabled:`` and its settings. A chip file
without ``effects:`` describes ideal devices (every effect off), as ``configs/chip.ideal.yaml`` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from instruments.config_files import check_keys
from sim_backend.effects.bias_field import BiasField
from sim_backend.effects.effect_settings import NON_NEGATIVE, POSITIVE, EffectConfigError, read_section
from sim_backend.effects.joule_heating import JouleHeating
from sim_backend.effects.magnet_temperature import MagnetTemperature
from sim_backend.effects.parameter_drift import ParameterDrift
from sim_backend.effects.reversal_pinning import ReversalPinning
from sim_backend.effects.telegraph_noise import TelegraphNoise
from sim_backend.macrospin import CLOSED_FORM_MIN_PULSE_S

SECTIONS = ("temperature", "joule_heating", "bias_field", "drift", "telegraph_noise", "reversal_pinning",
            "short_pulses")
SHORT_PULSE_MODELS = ("refuse", "macrospin", "closed_form")


@dataclass(frozen=True)
class DeviceEffects:
    """The effects of a chip's Hall bars; ``None`` for an effect that is off."""

    temperature: MagnetTemperature = MagnetTemperature()
    joule_heating: JouleHeating | None = None
    bias_field: BiasField | None = None
    drift: ParameterDrift | None = None
    telegraph_noise: TelegraphNoise | None = None
    reversal_pinning: ReversalPinning | None = None
    short_pulse_min_s: float = CLOSED_FORM_MIN_PULSE_S
    short_pulse_model: str = "closed_form"  # ideal devices: the textbook closed form at every width

    @property
    def enabled(self) -> list[str]:
        """The names of the effects that are on."""
        return [name for name in SECTIONS[1:6] if getattr(self, name) is not None]

    @property
    def ideal(self) -> bool:
        return not self.enabled

    def as_mapping(self) -> dict[str, Any] | None:
        """The ``effects:`` section (SI numbers) that :meth:`from_mapping` reads back as these effects; ``None`` for
        the ideal devices of a chip without one."""
        if self == DeviceEffects():
            return None
        t = self.temperature
        out: dict[str, Any] = {"temperature": {"ambient": t.ambient_k, "curie": t.curie_k, "tcr": t.tcr_per_k}}
        h, f, d, n, p = self.joule_heating, self.bias_field, self.drift, self.telegraph_noise, self.reversal_pinning
        out["joule_heating"] = False if h is None else {"specific_resistance": h.specific_resistance,
                                                        "time": h.time_s}
        out["bias_field"] = False if f is None else {"field": f.field_t, "anisotropy": f.anisotropy_t,
                                                     "reference": f.reference_t}
        out["drift"] = False if d is None else {"ic0_walk": d.ic0_walk, "delta_walk": d.delta_walk, "wear": d.wear,
                                                "wear_spread": d.wear_spread, "ambient_sigma": d.ambient_sigma_k,
                                                "ambient_time": d.ambient_time_s, "interval": d.interval_s}
        out["telegraph_noise"] = False if n is None else {"amplitude": n.amplitude_ohm, "dwell": n.dwell_s,
                                                          "reference_width": n.reference_width_m}
        out["reversal_pinning"] = False if p is None else {"probability": p.probability,
                                                           "overdrive_scale": p.overdrive_scale, "spread": p.spread}
        out["short_pulses"] = {"min_width": self.short_pulse_min_s, "model": self.short_pulse_model}
        return out

    @classmethod
    def from_mapping(cls, raw: Any) -> DeviceEffects:
        """Validate a chip file's ``effects:`` (``None``: no effects); :class:`EffectConfigError` names the key."""
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise EffectConfigError(f"effects: expected a mapping of effect sections, got {raw!r}")
        check_keys(raw, set(SECTIONS), "effects.", EffectConfigError)
        t = MagnetTemperature()
        _, temp, _ = read_section(raw.get("temperature", True), "temperature",
                                  {"ambient": ("K", *POSITIVE), "curie": ("K", *POSITIVE),
                                   "tcr": ("1/K", -1.0, True)},
                                  {"ambient": t.ambient_k, "curie": t.curie_k, "tcr": t.tcr_per_k})
        if temp["curie"] <= temp["ambient"]:
            raise EffectConfigError(f"effects.temperature.curie: {temp['curie']:g} K is not above the ambient "
                                    f"{temp['ambient']:g} K (the magnet would have no order)")
        h = JouleHeating()
        on, heat, _ = read_section(raw.get("joule_heating"), "joule_heating",
                                   {"specific_resistance": ("K*m^2/W", *NON_NEGATIVE), "time": ("s", *POSITIVE)},
                                   {"specific_resistance": h.specific_resistance, "time": h.time_s})
        heating = JouleHeating(heat["specific_resistance"], heat["time"]) if on else None
        f = BiasField()
        on, field, _ = read_section(raw.get("bias_field"), "bias_field",
                                    {"field": ("T", -10.0, True), "anisotropy": ("T", *POSITIVE),
                                     "reference": ("T", -10.0, True)},
                                    {"field": f.field_t, "anisotropy": f.anisotropy_t, "reference": f.reference_t})
        try:
            bias = BiasField(field["field"], field["anisotropy"], field["reference"]) if on else None
        except ValueError as exc:
            raise EffectConfigError(f"effects.bias_field.{exc}") from None
        d = ParameterDrift()
        on, drift, _ = read_section(raw.get("drift"), "drift",
                                    {"ic0_walk": ("", *NON_NEGATIVE), "delta_walk": ("", *NON_NEGATIVE),
                                     "wear": ("", *NON_NEGATIVE), "wear_spread": ("", *NON_NEGATIVE),
                                     "ambient_sigma": ("K", *NON_NEGATIVE), "ambient_time": ("s", *POSITIVE),
                                     "interval": ("s", *POSITIVE)},
                                    {"ic0_walk": d.ic0_walk, "delta_walk": d.delta_walk, "wear": d.wear,
                                     "wear_spread": d.wear_spread, "ambient_sigma": d.ambient_sigma_k,
                                     "ambient_time": d.ambient_time_s, "interval": d.interval_s})
        drifting = ParameterDrift(drift["ic0_walk"], drift["delta_walk"], drift["wear"], drift["wear_spread"],
                                  drift["ambient_sigma"], drift["ambient_time"], drift["interval"]) if on else None
        n = TelegraphNoise()
        on, rtn, _ = read_section(raw.get("telegraph_noise"), "telegraph_noise",
                                  {"amplitude": ("ohm", *NON_NEGATIVE), "dwell": ("s", *POSITIVE),
                                   "reference_width": ("m", *POSITIVE)},
                                  {"amplitude": n.amplitude_ohm, "dwell": n.dwell_s,
                                   "reference_width": n.reference_width_m})
        telegraph = TelegraphNoise(rtn["amplitude"], rtn["dwell"], rtn["reference_width"]) if on else None
        p = ReversalPinning()
        on, pin, _ = read_section(raw.get("reversal_pinning"), "reversal_pinning",
                                  {"probability": ("", *NON_NEGATIVE), "overdrive_scale": ("", *POSITIVE),
                                   "spread": ("", *NON_NEGATIVE)},
                                  {"probability": p.probability, "overdrive_scale": p.overdrive_scale,
                                   "spread": p.spread})
        if pin["probability"] > 1:
            raise EffectConfigError(f"effects.reversal_pinning.probability: must be ≤ 1, got {pin['probability']:g}")
        pinning = ReversalPinning(pin["probability"], pin["overdrive_scale"], pin["spread"]) if on else None
        _, short, other = read_section(raw.get("short_pulses", True), "short_pulses",
                                       {"min_width": ("s", *POSITIVE)}, {"min_width": CLOSED_FORM_MIN_PULSE_S},
                                       {"model": "refuse"})
        if other["model"] not in SHORT_PULSE_MODELS:
            raise EffectConfigError(f"effects.short_pulses.model: expected one of {', '.join(SHORT_PULSE_MODELS)}, "
                                    f"got {other['model']!r}")
        return cls(MagnetTemperature(temp["ambient"], temp["curie"], temp["tcr"]), heating, bias, drifting,
                   telegraph, pinning, short["min_width"], other["model"])
