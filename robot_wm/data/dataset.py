"""An append-only directory of episodes, and the transition arrays a world model trains on."""

from __future__ import annotations

import logging
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robot_wm.data.episode import Episode
from robot_wm.io import dangling_link

log = logging.getLogger(__name__)
_NAME = re.compile(r"^episode_([0-9]{6})\.npz$")  # ASCII digits: 'episode_٠٠٠٠٠١.npz' counted as 1 (probe 17)


@dataclass
class Transitions:
    obs: np.ndarray       # (N, S)
    action: np.ndarray    # (N, A)
    reward: np.ndarray    # (N,)
    next_obs: np.ndarray  # (N, S)

    def __len__(self) -> int:
        return len(self.action)


APPEND_TRIES = 100
"""Names ``append`` tries before giving up (each taken by another writer meanwhile)."""


def check_action_bounds(path, action: np.ndarray, low, high) -> None:
    """Refuse an episode whose actions leave the action bounds: the planner never sends such an action, so
    the episode was logged in other units (raw motor commands) or edited, and would train the model on
    transitions it can never plan with (the probe's 1e6-scaled episode trained with a 6e9 error)."""
    low, high = (np.asarray(b, dtype=np.float64).reshape(-1) for b in (low, high))
    a = np.asarray(action, dtype=np.float64)
    tol = 1e-5 * np.maximum(1.0, np.maximum(np.abs(low), np.abs(high)))
    out = ~np.isfinite(a) | (a < low - tol) | (a > high + tol)
    if out.any():
        t, j = (int(i) for i in np.argwhere(out)[0])
        raise ValueError(f"episode {str(path)!r}: action[{t}][{j}] = {float(a[t, j])!r} is outside the action bounds "
                         f"[{low[j]:g}, {high[j]:g}] ({int(out.sum())} values): an episode logged in other units "
                         "or edited; expected the actions the planner sent")


class EpisodeFolder:
    """Episodes stored as ``root/episode_000000.npz``, ``episode_000001.npz``, ... written without holding any in
    memory (a deployment's recorder: reading a folder of 2,000 episodes to append one, and keeping every episode it
    wrote, grew without bound on the robot's computer: probe 17). Appending never rewrites an existing file; temp
    files from an interrupted write are ignored. Only the first episode is read, to check that a new one fits it.

    A folder that does not exist is an error (a mistyped path read as "0 episodes" and left behind as a new
    folder before) unless ``create`` (a writer starting one)."""

    def __init__(self, root: str | Path, create: bool = False):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():  # "[Errno 17] File exists" before
            raise ValueError(f"episode folder {str(self.root)!r} is a file, not a folder")
        if not create and not self.root.is_dir():
            raise FileNotFoundError(f"episode folder {str(self.root)!r} does not exist (to start a new one, "
                                    f"{type(self).__name__}(path, create=True))")
        self.root.mkdir(parents=True, exist_ok=True)
        self._count, self._first = 0, None
        self.refresh()

    def paths(self) -> list[Path]:
        return sorted(p for p in self.root.iterdir() if _NAME.match(p.name))

    def _scan(self) -> list[Path]:
        """The episode files, numbered without gaps, each stored once."""
        paths = self.paths()
        seen = {}
        for i, p in enumerate(paths):
            if int(_NAME.match(p.name).group(1)) != i:
                raise ValueError(f"dataset {str(self.root)!r} has a gap: {p.name} where episode_{i:06d}.npz belongs")
            try:  # one file under two names (a link) was trained on twice, counted once (probe 13)
                st = p.stat()
            except OSError:  # a link that leads nowhere: deploy --record numbered past it (probe 37)
                raise ValueError(f"{dangling_link(p) or repr(str(p))}: it has an episode's name; move it out of the "
                                 "episode folder") from None
            if not stat.S_ISREG(st.st_mode):  # a folder so named was skipped by deploy --record (probe 36)
                raise ValueError(f"{str(p)!r} has an episode's name but is not a file (a folder, a FIFO or a device): "
                                 "move it out of the episode folder")
            key = (st.st_dev, st.st_ino)
            if st.st_ino and key in seen:  # inode 0: a file system without inode numbers
                raise ValueError(f"episode file {str(p)!r} is the same file as {seen[key].name} (a link): each episode "
                                 "is stored once; remove the link")
            seen[key] = p
        return paths

    def refresh(self) -> None:
        paths = self._scan()
        if paths and self._first is None:
            self._first = Episode.load(paths[0])
        self._count = len(paths)

    @property
    def first(self) -> Episode | None:
        """The folder's first episode (what every other one must fit), None while it holds none."""
        return self._first

    def _check_fits(self, ep: Episode, what: str) -> None:
        """Every episode of a dataset has the same observation and action sizes (the task itself is checked
        against the run's config by ``Session.open``, before anything is collected)."""
        first = self.first
        if first is None:
            return
        sizes = lambda e: (e.obs.shape[1:], e.action.shape[1:])  # noqa: E731
        if sizes(ep) != sizes(first):
            raise ValueError(f"{what} has observation/action sizes {sizes(ep)}, the dataset "
                             f"{str(self.root)!r} holds {sizes(first)} (an episode from another task?)")
        widths = {ep.physics_state.shape[1], first.physics_state.shape[1]} - {0}  # 0: a robot has no physics state
        if len(widths) > 1:  # a cut physics state failed deep in MuJoCo when dream replayed it
            raise ValueError(f"{what} has a physics state of {ep.physics_state.shape[1]} numbers per step, the dataset "
                             f"{str(self.root)!r} holds {first.physics_state.shape[1]}: the file is damaged or was edited")

    def append(self, episode: Episode) -> Path:
        """Store ``episode`` as the next file. Never replaces a stored one: when another writer took that name
        meanwhile (two ``deploy --record`` into one folder), the folder is read again and the next name is tried."""
        if not self.root.is_dir():  # removed while in use: the numbering went on, and the folder had a gap (probe 21)
            self._folder_removed()
        for _ in range(APPEND_TRIES):
            path = self.root / f"episode_{len(self):06d}.npz"
            self._check_fits(episode, f"the new episode {path.name}")
            try:
                episode.save(path, exclusive=True)
            except FileExistsError:
                self.refresh()
                continue
            self._stored(episode)
            return path
        raise FileExistsError(f"{str(self.root)!r}: another writer keeps taking the next episode name; "
                              f"{APPEND_TRIES} tries, nothing stored")

    def _folder_removed(self) -> None:
        """A recorder's folder removed while it records: made again, numbered from episode 0, and said."""
        log.warning("episode folder %s was removed while episodes were being written to it; it is made again and "
                    "numbered from episode_000000 (the episodes in the removed folder are gone)", self.root)
        self.root.mkdir(exist_ok=True)  # its parent gone too (an unmounted drive): an error, not a new path elsewhere
        self._count, self._first = 0, None

    def _stored(self, episode: Episode) -> None:
        self._count += 1
        if self._first is None:
            self._first = episode

    def __len__(self) -> int:
        return self._count


class EpisodeDataset(EpisodeFolder):
    """An episode folder read whole: every episode in memory, each checked to fit the first."""

    def __init__(self, root: str | Path, create: bool = False):
        self._episodes: list[Episode] = []
        super().__init__(root, create)

    def refresh(self) -> None:
        for p in self._scan()[len(self._episodes):]:
            ep = Episode.load(p)
            self._check_fits(ep, f"episode file {str(p)!r}")
            self._episodes.append(ep)

    @property
    def first(self) -> Episode | None:
        return self._episodes[0] if self._episodes else None

    def _folder_removed(self) -> None:
        raise FileNotFoundError(f"episode folder {str(self.root)!r} was removed while in use (it held "
                                f"{len(self._episodes)} episodes): restore it; nothing was written")

    def _stored(self, episode: Episode) -> None:
        self._episodes.append(episode)

    def __len__(self) -> int:
        return len(self._episodes)

    def __getitem__(self, i: int) -> Episode:
        return self._episodes[i]

    def __iter__(self):
        return iter(self._episodes)

    @property
    def env_steps(self) -> int:
        return self.env_steps_of(len(self._episodes))

    def env_steps_of(self, n: int) -> int:
        """The environment steps of the first ``n`` episodes."""
        total = 0
        for path, e in zip(self.paths()[:n], self._episodes[:n]):
            v = e.meta.get("env_steps", len(e))
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:  # null and "abc" were tracebacks (probe 12)
                raise ValueError(f"episode file {str(path)!r} says env_steps={v!r}: expected a whole number >= 0 "
                                 "(the episode file was edited or damaged: restore or remove it)")
            total += v
        return total

    def split(self, val_fraction: float) -> tuple[Transitions, list[Episode]]:
        """Training transitions, and one held-out contiguous segment of every episode (``split``)."""
        return split(self._episodes, val_fraction)


def split(episodes: list[Episode], val_fraction: float, first_index: int = 0) -> tuple[Transitions, list[Episode]]:
    """Training transitions, and one held-out contiguous segment of every episode (for validation
    and multi-step error). Every episode contributes to both, so few episodes still train well.
    The segment's place is drawn per episode (seeded by its index, counted from ``first_index``):
    holding out every tail would hide exactly the states a task rewards most (a balanced pole comes
    at the end)."""
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, int | float | np.floating) \
            or not 0 <= val_fraction < 1:  # -1 was taken, nan a numpy message (probe 15)
        raise ValueError(f"val_fraction={val_fraction!r}: expected a number from 0 to below 1")
    train, val = [], []
    for i, ep in enumerate(episodes, start=first_index):
        n_val = int(round(len(ep) * val_fraction))
        start = int(np.random.default_rng(i).integers(0, len(ep) - n_val + 1))
        train += [_slice(ep, 0, start), _slice(ep, start + n_val, len(ep))]
        if n_val > 0:
            val.append(_slice(ep, start, start + n_val))
    return concat(train), val


def _slice(ep: Episode, start: int, stop: int) -> Episode:
    return Episode(ep.obs[start:stop + 1], ep.action[start:stop], ep.reward[start:stop],
                   ep.physics_state[start:stop + 1], ep.meta)


def concat(episodes: list[Episode]) -> Transitions:
    episodes = [e for e in episodes if len(e) > 0]
    if not episodes:
        raise ValueError("no transitions: the dataset is empty")
    return Transitions(
        obs=np.concatenate([e.obs[:-1] for e in episodes]),
        action=np.concatenate([e.action for e in episodes]),
        reward=np.concatenate([e.reward for e in episodes]),
        next_obs=np.concatenate([e.obs[1:] for e in episodes]),
    )
