"""har: embedded stand-in for USC-HAD. Synthetic 6-channel 100 Hz recordings, 14 users × 12 activities × trials.

Same shape as the real set (see usc_had / recordings.py): every recording is one subject doing one activity
once, (T, 6) float samples, acc xyz in g then gyro xyz in dps, at 100 Hz. Stand-in axes: x vertical (up),
y lateral (left), z forward; the gyro channels are angular rates about the same axes (x = yaw, y = pitch,
z = roll). Recordings are `seconds` long (± `length_jitter`), far shorter than the real ones (≈ 20–30 s), so
the default set has ≈ 21,000 windows instead of the seed's 172,169.

recordings.split_windows z-scores every channel over each recording, so constant offsets (gravity, sensor
bias) and a channel's overall gain vanish. The signatures are therefore built from what survives: waveform
shape, tempo, cross-channel phase and mixing, noise relative to signal, and variation within a recording.

Activity (the label) — a waveform family per activity, in body axes:

| activity                | base rhythm          | what carries it                                                |
|-------------------------|----------------------|----------------------------------------------------------------|
| Walking Forward         | stride 0.95 Hz       | vertical + forward acc at the step rate (2nd harmonic), pitch  |
| Walking Left / Right    | stride 0.8 / 0.85 Hz | lateral acc and roll carry the swing; mirror images (lateral   |
|                         |                      | acc, yaw, roll change sign), so the lateral 2nd harmonic and   |
|                         |                      | the yaw sign relative to vertical tell left from right         |
| Walking Upstairs / Down | 0.8 / 0.95 Hz        | strong 1st–3rd vertical harmonics with opposite skew; down has |
|                         |                      | sharper impacts (larger 3rd harmonic); large pitch going up    |
| Running Forward         | stride 1.4 Hz        | sharp vertical impact peaks at the step rate (von Mises        |
|                         |                      | pulses), large pitch and roll                                  |
| Jumping Up              | 0.7 Hz jumps         | impulsive landing spike + broad take-off push, then quiet      |
| Sitting                 | breathing 0.25 Hz    | slow sway: forward acc + pitch (vertical a little)             |
| Standing                | breathing 0.25 Hz    | lateral + forward sway and roll, 8–10 Hz tremor, 1.2× noise    |
| Sleeping                | breathing 0.25 Hz    | chest rise: vertical against forward acc + pitch, half noise   |
| Elevator Up / Down      | one ride             | a sharp (0.5 s) then a broad (1.2 s) vertical acceleration     |
|                         |                      | bump of opposite sign and equal area (up: + then −), 14–18 Hz  |
|                         |                      | cabin hum, mild noise                                          |

Amplitudes are `static` (g) for the three postures' sway, `elevator` (g) for the ride's sharp bump; the gait
tables are fixed. Static and elevator classes are legitimately confusable (as in the real data): a window in
the elevator's cruise looks the same going up or down.

User (the nuisance the censor papers remove) — drawn once per user:

| parameter     | per user, drawn once                             | default | survives standardisation as      |
|---------------|--------------------------------------------------|---------|----------------------------------|
| `tempo`       | rhythm factor U(1 − tempo, 1 + tempo)            | 0.15    | tempo / curvature of any rhythm  |
| `harmonics` h | 2nd / 3rd harmonic gain exp(N(0, h²)) and phase  | 0.7     | waveform shape (user-only cue)   |
|               | U(−h·π/2, h·π/2); pulse sharpness exp(N(0, h²/4)) |         |                                  |
| `orientation` | sensor rotation by U(0, orientation)° about a    | 20°     | cross-channel mixing (user-only  |
|               | random axis, on the acc and the gyro triplet     |         | cue)                             |
| `user_noise` n| per-channel noise factor exp(U(−n, n))           | 0.5     | noise relative to signal, per    |
|               |                                                  |         | channel (a sensor trait)         |
| (fixed)       | per-channel gain U(0.9, 1.1), bias N(0, 0.05 g / 5 dps) |  | nothing (realism only)           |

With every user parameter at 0 the users are indistinguishable (tests/test_har.py checks that). Larger
`orientation` also moves unseen users' axis patterns away from the training users' (lower unseen F1).

Trial (so a user's trials differ): start phase U(0, 2π); tempo × (1 + N(0, trial_tempo²)) plus a linear drift
of U(−trial_tempo, trial_tempo) over the recording; per-channel amplitude × exp(N(0, 0.1²)); elevator bump
times; fresh noise. Within a recording, `wander` sets a smooth random phase wobble (std ≈ `wander` rad) and
amplitude modulation (std ≈ `wander`/2), each a sum of three random 0.1–0.6 Hz sinusoids.

Sensor noise: white, std `noise` g on acc and 100·`noise` dps on gyro, × the user's per-channel factor, × an
activity factor (gait 4–8, postures 0.5–1.2, elevator 1).

Measured on the default set (seed 0, split_seed 0; a 3-conv CNN like the censor encoder, 12 epochs, on
`train`): activity macro-F1 ≈ 0.93 on `seen`, ≈ 0.86 on `unseen` (0.78–0.91 over generator seeds 0–2; the
elevators are the confused pair, F1 ≈ 0.6–0.7); user accuracy on `seen` ≈ 0.53–0.62 (chance 0.1), and ≈ 0.57 for
an 800-200 MLP on the activity CNN's frozen features. A linear model on raw windows is at chance for both
(the rhythm's phase is random per window).

Everything is deterministic from `seed` (numpy only, vectorised over all recordings at once). Independent
streams (users, trials, noise) keep user u's parameters the same when `trials` or `seconds` change.

Raw layout (`download`): `har.npz` with `signal` float32 (ΣT, 6) — the recordings concatenated in order —,
`lengths`, and `activity` (1-based), `user` (1-based), `trial` (1-based) per recording; `meta.json` with the
generator params and every user's drawn values. `prepare` windows and splits them through recordings.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from replab.data.recordings import ACTIVITIES, CHANNELS, N_USERS, WindowingConfig, split_windows, write_windows
from replab.io import DataError, npz_array, read_json, read_npz, require_finite, write_json, write_npz
from replab.params import SEED_MAX, fail, param

RAW_FILE = "har.npz"
FS = 100.0  # Hz
GYRO_PER_G = 100.0  # gyro noise (dps) per unit of acc noise (g)
N_ACTIVITIES = len(ACTIVITIES)
_K = 3  # harmonics per channel

# ---------------------------------------------------------------------------------------------------------
# Activity tables (body axes: acc_v, acc_l, acc_f in g; yaw, pitch, roll in dps)

_BASE_HZ = np.array([0.95, 0.8, 0.85, 0.8, 0.95, 1.4, 0.7, 0.25, 0.25, 0.25, 0.0, 0.0])
_NOISE = np.array([4.0, 4.0, 4.0, 5.0, 5.0, 8.0, 6.0, 1.0, 1.2, 0.5, 1.0, 1.0])  # × `noise`
_STATIC = (7, 8, 9)
_ELEVATOR = (10, 11)


def _tables(static: float) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic amplitudes and phases (12, 6, 3): channel c of activity a is Σ_k A cos(kθ + P)."""
    amp = np.zeros((N_ACTIVITIES, 6, _K))
    phase = np.zeros((N_ACTIVITIES, 6, _K))

    def put(a, c, amps, phases):
        amp[a, c], phase[a, c] = amps, phases

    # Walking Forward: step-rate vertical bounce, forward surge leading it, lateral sway at the stride rate
    put(0, 0, (0.05, 0.30, 0.06), (0.0, 0.0, 0.5))
    put(0, 1, (0.10, 0.03, 0.0), (np.pi / 2, 0.3, 0.0))
    put(0, 2, (0.03, 0.18, 0.04), (0.2, -np.pi / 2, 0.8))
    put(0, 3, (12.0, 3.0, 0.0), (0.3, 1.0, 0.0))
    put(0, 4, (10.0, 20.0, 4.0), (0.0, np.pi / 3, 0.0))
    put(0, 5, (15.0, 5.0, 0.0), (0.0, 0.4, 0.0))
    # Walking Left (side steps): lateral acc and roll dominate; Walking Right is its mirror image (below)
    put(1, 0, (0.06, 0.20, 0.03), (0.4, 0.0, 0.3))
    put(1, 1, (0.20, 0.10, 0.02), (0.0, np.pi / 2, 0.0))
    put(1, 2, (0.03, 0.04, 0.0), (0.0, 0.5, 0.0))
    put(1, 3, (8.0, 4.0, 0.0), (np.pi / 2, 1.0, 0.0))
    put(1, 4, (5.0, 8.0, 0.0), (0.0, 0.3, 0.0))
    put(1, 5, (25.0, 10.0, 0.0), (0.0, -0.5, 0.0))
    amp[2], phase[2] = amp[1], phase[1]
    mirror = np.array([1, -1, 1, -1, 1, -1])[:, None]  # y → −y flips lateral acc, yaw and roll
    phase[2] = np.where(mirror < 0, phase[2] + np.pi, phase[2])
    phase[2, 1, 1] += 0.6  # the right lead leg is not an exact mirror of the left
    # Walking Upstairs: slow, large knee lift (pitch), vertical skewed one way
    put(3, 0, (0.12, 0.18, 0.08), (0.0, 0.8, 1.6))
    put(3, 1, (0.06, 0.03, 0.0), (0.5, 0.0, 0.0))
    put(3, 2, (0.08, 0.10, 0.03), (np.pi / 2, 0.4, 0.0))
    put(3, 3, (8.0, 2.0, 0.0), (0.2, 0.0, 0.0))
    put(3, 4, (30.0, 10.0, 3.0), (0.0, 0.7, 0.0))
    put(3, 5, (10.0, 4.0, 0.0), (1.0, 0.0, 0.0))
    # Walking Downstairs: faster, sharper impacts (3rd harmonic), skewed the other way
    put(4, 0, (0.10, 0.25, 0.15), (0.0, -0.8, -1.6))
    put(4, 1, (0.07, 0.04, 0.02), (-0.5, 0.0, 0.0))
    put(4, 2, (0.05, 0.12, 0.05), (-np.pi / 2, -0.4, 0.0))
    put(4, 3, (10.0, 3.0, 0.0), (-0.2, 0.0, 0.0))
    put(4, 4, (20.0, 12.0, 5.0), (0.0, -0.7, 0.3))
    put(4, 5, (12.0, 6.0, 0.0), (-1.0, 0.0, 0.0))
    # Running Forward: harmonics under the impact pulses (_pulses)
    put(5, 0, (0.05, 0.30, 0.0), (0.0, 0.0, 0.0))
    put(5, 1, (0.15, 0.05, 0.0), (np.pi / 2, 0.0, 0.0))
    put(5, 2, (0.05, 0.20, 0.05), (0.0, -np.pi / 2, 0.0))
    put(5, 3, (20.0, 5.0, 0.0), (0.3, 0.0, 0.0))
    put(5, 4, (60.0, 30.0, 8.0), (0.0, 0.5, 0.0))
    put(5, 5, (25.0, 8.0, 0.0), (0.0, 0.0, 0.0))
    # Jumping Up: a little body sway between the pulses
    put(6, 1, (0.03, 0.0, 0.0), (0.0, 0.0, 0.0))
    put(6, 3, (4.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    put(6, 5, (6.0, 2.0, 0.0), (0.5, 0.0, 0.0))
    # Postures: breathing-rate sway, amplitude `static` (g) and 100·`static` dps, distinct axis patterns
    s, g = static, static * GYRO_PER_G
    put(7, 0, (0.4 * s, 0.0, 0.0), (0.0, 0.0, 0.0))  # Sitting: forward rock + pitch
    put(7, 2, (1.0 * s, 0.3 * s, 0.0), (0.0, 0.5, 0.0))
    put(7, 4, (1.0 * g, 0.2 * g, 0.0), (np.pi / 2, 0.0, 0.0))
    put(8, 1, (1.0 * s, 0.0, 0.4 * s), (0.0, 0.0, 1.0))  # Standing: lateral postural sway + roll (+ tremor)
    put(8, 2, (0.6 * s, 0.0, 0.3 * s), (np.pi / 3, 0.0, 0.0))
    put(8, 5, (0.8 * g, 0.0, 0.3 * g), (np.pi / 2, 0.0, 0.0))
    put(9, 0, (0.8 * s, 0.25 * s, 0.0), (0.0, 0.6, 0.0))  # Sleeping: chest rise (vertical) against forward
    put(9, 2, (0.5 * s, 0.0, 0.0), (np.pi, 0.0, 0.0))
    put(9, 4, (0.4 * g, 0.1 * g, 0.0), (np.pi / 2, 0.0, 0.0))
    return amp, phase


def _pulses() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Impulse slots (12, J=2): amplitude per channel (12, 6, J), rhythm multiple m, sharpness κ, phase μ.

    A pulse is exp(κ·(cos(m·θ − μ) − 1)): one peak per 1/m of the base cycle, narrower as κ grows."""
    amp = np.zeros((N_ACTIVITIES, 6, 2))
    mult = np.ones((N_ACTIVITIES, 2))
    kappa = np.ones((N_ACTIVITIES, 2))
    mu = np.zeros((N_ACTIVITIES, 2))
    # Running: heel-strike impacts at the step rate, vertical and (lagging) forward
    amp[5, :, 0] = (1.2, 0.1, 0.4, 0.0, 20.0, 0.0)
    amp[5, :, 1] = (0.0, 0.0, -0.3, 0.0, 0.0, 10.0)
    mult[5], kappa[5], mu[5] = (2, 2), (8.0, 5.0), (0.0, 0.6)
    # Jumping: sharp landing spike and a broad take-off push before it
    amp[6, :, 0] = (2.0, 0.1, 0.3, 0.0, 40.0, 10.0)
    amp[6, :, 1] = (0.8, 0.0, 0.1, 0.0, -15.0, 0.0)
    mult[6], kappa[6], mu[6] = (1, 1), (25.0, 5.0), (0.0, -1.3)
    return amp, mult, kappa, mu


@dataclass(frozen=True)
class HarConfig(WindowingConfig):
    """Windowing (shared with usc_had) plus the stand-in's generator."""

    seed: int = param(0, ge=0, le=SEED_MAX, doc="seeds users, trials and noise")
    trials: int = param(5, ge=1, le=20, doc="recordings per user and activity (USC-HAD: 5)")
    seconds: float = param(4.0, gt=0.0, le=120.0, doc="mean recording length in seconds at 100 Hz")
    length_jitter: float = param(0.1, ge=0.0, lt=1.0, doc="recording length × U(1 − j, 1 + j)")
    tempo: float = param(0.15, ge=0.0, lt=0.5, doc="per-user rhythm factor U(1 − tempo, 1 + tempo)")
    harmonics: float = param(0.7, ge=0.0, le=2.0, doc="per-user waveform shape: 2nd/3rd harmonic gain "
                                                      "exp(N(0, h²)), phase U(±h·π/2), pulse sharpness")
    orientation: float = param(20.0, ge=0.0, le=180.0, doc="per-user sensor rotation in degrees, "
                                                          "U(0, orientation) about a random axis")
    user_noise: float = param(0.5, ge=0.0, le=2.0, doc="per-user, per-channel noise factor exp(U(−n, n))")
    # amplitudes in g at most 100 (a sensor's range is ±16 g): 1e300 made every generated value infinite in float32
    noise: float = param(0.004, ge=0.0, le=100.0, doc="sensor noise std in g (gyro: 100× in dps), before the "
                                                      "activity and user factors")
    trial_tempo: float = param(0.03, ge=0.0, lt=0.5, doc="per-trial tempo jitter std and max drift")
    wander: float = param(0.3, ge=0.0, le=2.0, doc="within-recording phase wobble (rad); amplitude "
                                                   "modulation is half of it")
    static: float = param(0.01, ge=0.0, le=100.0, doc="postures' sway amplitude in g (gyro: 100× in dps)")
    elevator: float = param(0.06, ge=0.0, le=100.0, doc="elevator's sharp acceleration bump in g")

    def check(self, where: str) -> None:
        super().check(where)
        shortest = int(np.floor(self.seconds * (1 - self.length_jitter) * FS))
        if shortest < self.window:
            fail(where, f"seconds = {self.seconds}: the shortest recording ({shortest} samples with "
                        f"length_jitter {self.length_jitter}) must hold one window of {self.window}")


# The generator's params, what download() reads of the config (registry.download_params); the windowing is prepare's.
# Written out, so that the download's code fingerprint (code_closure) does not hold the config classes
DOWNLOAD_PARAMS = ("seed", "trials", "seconds", "length_jitter", "tempo", "harmonics", "orientation", "user_noise",
                   "noise", "trial_tempo", "wander", "static", "elevator")


# ---------------------------------------------------------------------------------------------------------
# DVC stages


def download(name: str, cfg: HarConfig, raw_dir: Path, progress: bool = False) -> None:
    """Generate the recordings into `raw_dir` (har.npz + meta.json); nothing is fetched."""
    data = generate(cfg)
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    write_npz(raw_dir / RAW_FILE, **{k: data[k] for k in ("signal", "lengths", "activity", "user", "trial")})
    write_json(raw_dir / "meta.json", {"dataset": name, "source": "embedded", "generator": generator_meta(cfg),
                                       "users": data["users"]})


def prepare(name: str, cfg: HarConfig, raw_dir: Path, out_dir: Path, split_seed: int) -> dict:
    """Window and split the raw recordings (recordings.split_windows) and write the processed layout."""
    raw = load_raw(raw_dir)
    expected = generator_meta(cfg)
    if raw["meta"].get("generator") != expected:
        raise DataError(f"{Path(raw_dir) / 'meta.json'}: generated with other data.{name} params "
                        "(run the download stage again)")
    bounds = np.cumsum(raw["lengths"])[:-1]
    recordings = np.split(raw["signal"], bounds)
    splits = split_windows(cfg, recordings, raw["activity"], raw["user"], raw["trial"], split_seed)
    meta = {"dataset": name, "source": "embedded", "generator": expected, "recordings": int(len(recordings)),
            "windowing": {"window": cfg.window, "stride": cfg.stride, "train_users": cfg.train_users,
                          "unseen_users": cfg.unseen_users, "seen_fraction": cfg.seen_fraction,
                          "split_seed": split_seed, "standardise": "per recording and channel"}}
    return write_windows(Path(out_dir), splits, meta)


def generator_meta(cfg: HarConfig) -> dict:
    return {"module": __name__, "fs_hz": FS, **{k: getattr(cfg, k) for k in DOWNLOAD_PARAMS}}


def load_raw(raw_dir: Path) -> dict:
    """har.npz arrays + meta; DataError naming the file when it is missing or inconsistent."""
    raw_dir = Path(raw_dir)
    path = raw_dir / RAW_FILE
    if not path.is_file() or not (raw_dir / "meta.json").is_file():
        raise DataError(f"{path if not path.is_file() else raw_dir / 'meta.json'}: missing "
                        "(run the download stage first)")
    stage = f"download@{raw_dir.name}"  # the set's name in `datasets` is its raw folder's
    arrays = read_npz(path, stage=stage)
    meta = read_json(raw_dir / "meta.json", expect=dict, stage=stage)
    per = dict(row="recording", like="lengths")
    lengths = npz_array(path, arrays, "lengths", dtype="integer", shape=("R",), noun="recording lengths",
                        row="recording", values=(1, None), nonempty=True, of="samples per recording")
    activity = npz_array(path, arrays, "activity", dtype="integer", shape=("R",), noun="activity ids",
                         values=(1, N_ACTIVITIES), of="1-based", **per)
    user = npz_array(path, arrays, "user", dtype="integer", shape=("R",), noun="user ids",
                     values=(1, N_USERS), of="1-based subject numbers", **per)
    trial = npz_array(path, arrays, "trial", dtype="integer", shape=("R",), noun="trial numbers",
                      values=(1, None), **per)
    signal = npz_array(path, arrays, "signal", dtype="float", shape=("T", len(CHANNELS)), noun="sensor values",
                       row="sample")
    if (total := int(lengths.sum(dtype=object))) != len(signal):  # Python ints: no overflow
        raise DataError(f"{path}: signal has {len(signal)} samples, the lengths sum to {total}")
    with np.errstate(over="ignore"):  # the windows' dtype: a finite float64 may overflow to ±inf, refused next
        signal = signal.astype(np.float32, copy=False)
    require_finite(signal, f"{path}: signal (as float32)", hint="sensor values must be finite and within float32")
    arrays = {**arrays, "signal": signal, "lengths": lengths, "activity": activity, "user": user, "trial": trial}
    return {**arrays, "meta": meta}


# ---------------------------------------------------------------------------------------------------------
# Generation


def rotations(axes: np.ndarray, degrees: np.ndarray) -> np.ndarray:
    """Rotation matrices (N, 3, 3) about unit `axes` (N, 3) by `degrees` (Rodrigues)."""
    theta = np.deg2rad(degrees)[:, None, None]
    x, y, z = axes.T
    zero = np.zeros_like(x)
    k = np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], -2)
    return np.eye(3) + np.sin(theta) * k + (1 - np.cos(theta)) * k @ k


def draw_users(cfg: HarConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-user parameters (one fixed-size draw per field, so user u is stable across sizes)."""
    n = N_USERS
    axes = rng.standard_normal((n, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    return {
        "tempo": 1 + cfg.tempo * rng.uniform(-1, 1, n),
        "harmonic_gain": np.exp(cfg.harmonics * rng.standard_normal((n, _K - 1))),
        "harmonic_phase": cfg.harmonics * np.pi / 2 * rng.uniform(-1, 1, (n, _K - 1)),
        "sharpness": np.exp(cfg.harmonics / 2 * rng.standard_normal(n)),
        "axis": axes,
        "angle": cfg.orientation * rng.random(n),
        "noise": np.exp(cfg.user_noise * rng.uniform(-1, 1, (n, 6))),
        "gain": rng.uniform(0.9, 1.1, (n, 6)),
        "bias": rng.standard_normal((n, 6)) * np.array([0.05] * 3 + [5.0] * 3),
    }


def _smooth(rng: np.random.Generator, r: int, t: np.ndarray) -> np.ndarray:
    """Unit-variance smooth random processes (r, L): sums of three 0.1–0.6 Hz sinusoids."""
    freq = rng.uniform(0.1, 0.6, (r, 3, 1))
    ph = rng.uniform(0, 2 * np.pi, (r, 3, 1))
    return np.sin(2 * np.pi * freq * t + ph).sum(1) / np.sqrt(1.5)


def generate(cfg: HarConfig) -> dict:
    """All recordings: `signal` float32 (ΣT, 6), `lengths`, 1-based `activity` / `user` / `trial`, and `users`
    (the drawn per-user values). Vectorised over recordings (padded to the longest, then cut)."""
    user_rng, trial_rng, noise_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(3))
    users = draw_users(cfg, user_rng)
    grid = np.stack(np.meshgrid(np.arange(N_USERS), np.arange(N_ACTIVITIES), np.arange(cfg.trials),
                                indexing="ij"), -1).reshape(-1, 3)
    u, a, tr = grid.T  # user-major, then activity, then trial (0-based)
    r = len(grid)

    # per-trial draws (one block each, fixed order)
    lengths = np.floor(cfg.seconds * FS * (1 + cfg.length_jitter * trial_rng.uniform(-1, 1, r))).astype(np.int64)
    phase0 = trial_rng.uniform(0, 2 * np.pi, r)
    tempo = users["tempo"][u] * (1 + cfg.trial_tempo * trial_rng.standard_normal(r))
    drift = cfg.trial_tempo * trial_rng.uniform(-1, 1, r)
    trial_gain = np.exp(0.1 * trial_rng.standard_normal((r, 6)))
    ride = trial_rng.uniform(0, 1, (r, 2))  # elevator bump times
    hum = trial_rng.uniform(14.0, 18.0, r)  # elevator cabin hum (Hz)
    tremor = trial_rng.uniform(8.0, 10.0, r)  # standing tremor (Hz)
    length_max = int(lengths.max())
    t = np.arange(length_max) / FS  # (L,)
    dur = (lengths / FS)[:, None]
    wobble, modulation = _smooth(trial_rng, r, t), _smooth(trial_rng, r, t)

    # phase of the activity's rhythm: tempo with a linear drift over the recording, plus a smooth wobble
    f = (_BASE_HZ[a] * tempo)[:, None]
    theta = 2 * np.pi * f * (t + drift[:, None] * (t ** 2 - dur * t) / (2 * dur)) + phase0[:, None]
    theta = theta + cfg.wander * wobble  # (R, L)

    # harmonics: user-specific gain / phase on the 2nd and 3rd
    amp, ph = _tables(cfg.static)
    k = np.arange(1, _K + 1)
    h_gain = np.concatenate([np.ones((N_USERS, 1)), users["harmonic_gain"]], 1)[u]  # (R, K)
    h_phase = np.concatenate([np.zeros((N_USERS, 1)), users["harmonic_phase"]], 1)[u]
    arg = k[None, None, :, None] * theta[:, None, None, :] + (ph[a] + h_phase[:, None, :])[..., None]
    body = np.einsum("rck,rckl->rcl", amp[a] * h_gain[:, None, :], np.cos(arg))  # (R, 6, L)

    # impulses (running, jumping), sharpness scaled per user
    p_amp, p_mult, p_kappa, p_mu = _pulses()
    kappa = p_kappa[a] * users["sharpness"][u][:, None]  # (R, J)
    pulse = np.exp(kappa[..., None] * (np.cos(p_mult[a][..., None] * theta[:, None, :] - p_mu[a][..., None]) - 1))
    body += np.einsum("rcj,rjl->rcl", p_amp[a], pulse)

    # standing: physiological tremor on roll and lateral acc
    is_standing = (a == 8)[:, None]
    buzz = np.sin(2 * np.pi * tremor[:, None] * t + phase0[:, None]) * is_standing
    body[:, 1] += 0.3 * cfg.static * buzz
    body[:, 5] += 0.5 * cfg.static * GYRO_PER_G * buzz

    # elevators: sharp bump (0.25 s) then a broad one (0.6 s) of opposite sign and equal area; up starts with +
    is_lift = np.isin(a, _ELEVATOR)
    sign = np.where(a == 10, 1.0, -1.0)[:, None]
    t1 = dur * (0.15 + 0.15 * ride[:, :1])
    t2 = dur * (0.6 + 0.15 * ride[:, 1:])
    w1, w2 = 0.5, 1.2
    profile = np.exp(-0.5 * ((t - t1) / (w1 / 2)) ** 2) - (w1 / w2) * np.exp(-0.5 * ((t - t2) / (w2 / 2)) ** 2)
    body[:, 0] += (is_lift[:, None] * sign) * cfg.elevator * profile
    cabin = np.sin(2 * np.pi * hum[:, None] * t + phase0[:, None]) * is_lift[:, None]
    body[:, 0] += 0.1 * cfg.elevator * cabin
    body[:, 2] += 0.05 * cfg.elevator * cabin

    # within-recording amplitude modulation and per-trial channel gain
    body *= (1 + cfg.wander / 2 * modulation)[:, None, :]
    body *= trial_gain[..., None]

    # gravity (upright, or lying for sleeping), sensor orientation, gain and bias
    gravity = np.zeros((r, 6))
    gravity[:, 0] = 1.0
    gravity[a == 9] = (0.1, 0.0, 1.0, 0.0, 0.0, 0.0)
    gravity[a == 7] = (0.9, 0.0, 0.4, 0.0, 0.0, 0.0)
    body += gravity[..., None]
    rot = rotations(users["axis"], users["angle"])[u]  # (R, 3, 3)
    sensed = np.concatenate([np.einsum("rij,rjl->ril", rot, body[:, :3]),
                             np.einsum("rij,rjl->ril", rot, body[:, 3:])], 1)
    sensed = sensed * users["gain"][u][..., None] + users["bias"][u][..., None]

    # white sensor noise
    per_channel = (cfg.noise * _NOISE[a])[:, None] * users["noise"][u] * np.array([1.0] * 3 + [GYRO_PER_G] * 3)
    sensed += per_channel[..., None] * noise_rng.standard_normal(sensed.shape)

    valid = np.arange(length_max)[None, :] < lengths[:, None]  # (R, L)
    signal = sensed.transpose(0, 2, 1)[valid].astype(np.float32)  # (ΣT, 6), recording after recording
    return {"signal": signal, "lengths": lengths, "activity": (a + 1).astype(np.int64),
            "user": (u + 1).astype(np.int64), "trial": (tr + 1).astype(np.int64),
            "users": dict(users)}
