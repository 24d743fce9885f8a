"""`IPIClient`: a qmml potential as an i-PI force driver (path-integral MD, advanced sampling).

i-PI (https://ipi-code.org) moves the atoms (or beads) and asks connected drivers for energies and
forces over a socket.  This module speaks that protocol with the standard library and numpy only;
the i-PI server itself comes with ``pip install "qmml[ipi]"``.

Protocol (one driver connection; every header is 12 ASCII bytes, padded with spaces; numbers are
native-endian int32 and float64):

    server STATUS    -> client NEEDINIT (before INIT) | READY | HAVEDATA (forces computed, not sent)
    server INIT      int32 replica id, int32 n, n bytes of parameters ("batch_size:N" asks for batches)
    server POSDATA   float64[9] cell h (lattice vectors as columns), float64[9] its inverse,
                     int32 n_atoms, float64[3 n_atoms] positions
                     (batched: int32 n_atoms, float64[18 N] cells and inverses, float64[3 n_atoms N])
    server GETFORCE  -> client FORCEREADY, float64 energy, int32 n_atoms, float64[3 n_atoms] forces,
                        float64[9] virial, int32 n, n bytes of extra (batched: N energies, n_atoms,
                        N force blocks, N virials, then N length-prefixed extras)
    server EXIT      the client stops

Units on the wire are atomic: positions and cell in Bohr, energy and virial in Hartree, forces in
Hartree/Bohr; they are converted with `qmml.units` at the socket and nowhere else.
"""

from __future__ import annotations

import logging
import socket
import time
import warnings

import numpy as np

from .. import units
from ..errors import InputError, QmmlError
from ..periodic.cell import volume
from ..potential import Potential
from ._guess import NearestGeometryGuess

log = logging.getLogger(__name__)

HEADER_BYTES = 12
DEFAULT_SOCKETS_PREFIX = "/tmp/ipi_"


class IPIConnectionError(QmmlError, ConnectionError):
    """No i-PI server to connect to, or the server broke the protocol or the connection."""


def _header(word: str) -> bytes:
    return word.ljust(HEADER_BYTES).encode("ascii")


def virial(positions_A, forces_eV_A) -> np.ndarray:
    """``W_ab = sum_i r_ia F_ib`` (eV), the virial i-PI expects, of a potential with open boundaries.

    It is minus the derivative of the energy with respect to a homogeneous strain of all positions
    (``dE/de = -trace(W)`` for ``r -> (1 + e) r``), and does not depend on the origin when the net
    force vanishes.  With periodic boundaries the strain also moves the images, which this sum
    misses: qmml potentials give no periodic virial (see `IPIClient`).

    Parameters
    ----------
    positions_A : array_like (n, 3)
        Å.
    forces_eV_A : array_like (n, 3)
        eV/Å.
    """
    r = np.asarray(positions_A, dtype=np.float64)
    f = np.asarray(forces_eV_A, dtype=np.float64)
    return r.T @ f


class IPIClient:
    """Serve energies and forces of a qmml potential to an i-PI server until it sends EXIT.

    Parameters
    ----------
    potential : Hamiltonian, MLPotential, QMPotential, Restrained or any potential
        Anything with ``compute(positions_A)`` returning ``.energy`` (eV) and ``.forces`` (eV/Å),
        and a ``system`` whose atoms are those of i-PI's input, in the same order.
    address : str
        Unix socket: the name in i-PI's ``<ffsocket mode='unix'><address>NAME</address>``, found at
        ``sockets_prefix + NAME`` (i-PI's default prefix is ``/tmp/ipi_``).  Inet socket: the host name.
    port : int, optional
        TCP port of an inet socket (i-PI ``<port>``); giving it selects an inet socket.
    unix : bool, optional
        Default: a unix socket unless ``port`` is given.
    sockets_prefix : str
        Where i-PI puts unix sockets (``<ffsocket sockets_prefix=...>``).
    connect_timeout_s : float
        How long to keep trying to connect while i-PI starts up, s.
    guess_cache : int
        Geometries whose converged SCF densities are remembered; each SCF starts from the density of
        the closest one, so beads served in turn do not spoil each other's guesses (speed only; every
        SCF converges to the engine's threshold).  At least the number of beads.

    Notes
    -----
    Virial: ``sum_i r_i F_i`` (`virial`) for open boundaries; for a periodic potential -V times its
    stress (the strain derivative -dE/d(strain)), with i-PI's cell passed on every call, so
    constant-pressure and cell-changing runs work.  A periodic potential without a stress gets a
    zero virial and a warning.

    Examples
    --------
    i-PI input with ``<ffsocket name='qmml' mode='unix'><address>h2o</address></ffsocket>``:

    >>> IPIClient(qmml.MLPotential(qmml.load_model("water"), system), "h2o").run()   # doctest: +SKIP
    """

    def __init__(self, potential, address: str = "qmml", *, port: int | None = None, unix: bool | None = None,
                 sockets_prefix: str = DEFAULT_SOCKETS_PREFIX, connect_timeout_s: float = 60.0,
                 guess_cache: int = 64):
        if not isinstance(potential, Potential):
            raise InputError(f"IPIClient: {potential!r} is not a qmml potential (a qmml.Potential: Hamiltonian, "
                             "MLPotential, QMPotential, Restrained or your own subclass)")
        if unix is None:
            unix = port is None
        if unix and port is not None:
            raise InputError(f"IPIClient: port={port} with unix=True; a unix socket has no port: drop port= or "
                             "pass unix=False for an inet socket")
        if not unix and port is None:
            raise InputError("IPIClient: an inet socket needs port= (i-PI's <port>)")
        if not address:
            raise InputError("IPIClient: address is empty; give i-PI's <address> (socket name or host)")
        self.potential = potential
        self.system = potential.system
        self.address, self.port, self.unix = str(address), port, bool(unix)
        self.sockets_prefix = sockets_prefix
        self.connect_timeout_s = float(connect_timeout_s)
        self.guess = NearestGeometryGuess(potential, guess_cache)
        self.n_evaluations = 0
        self.last_result = None
        self._sock: socket.socket | None = None
        self._warned_virial = False

    def __repr__(self) -> str:
        return f"IPIClient({self.potential!r}, {self.where})"

    @property
    def where(self) -> str:
        """The socket this client connects to, for messages."""
        return f"unix socket {self.sockets_prefix}{self.address}" if self.unix else \
            f"inet socket {self.address}:{self.port}"

    # -- connection ----------------------------------------------------------------------
    def connect(self) -> None:
        """Connect, retrying for ``connect_timeout_s`` while the server is not up yet."""
        deadline = time.monotonic() + self.connect_timeout_s
        while True:
            if self.unix:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                target = self.sockets_prefix + self.address
            else:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # many tiny messages
                target = (self.address, int(self.port))
            try:
                sock.connect(target)
            except (FileNotFoundError, ConnectionRefusedError, TimeoutError) as err:
                sock.close()
                if time.monotonic() > deadline:
                    raise IPIConnectionError(
                        f"no i-PI server at the {self.where} after {self.connect_timeout_s:g} s ({err}); start i-pi "
                        "first and check that its <ffsocket> mode and <address> (and <port>) match") from None
                time.sleep(0.1)
                continue
            except OSError as err:
                sock.close()
                raise IPIConnectionError(f"cannot connect to the {self.where}: {err}") from None
            self._sock = sock
            log.info("connected to i-PI at the %s", self.where)
            return

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _recv(self, n_bytes: int) -> bytes:
        buffer = bytearray(n_bytes)
        view, got = memoryview(buffer), 0
        while got < n_bytes:
            n = self._sock.recv_into(view[got:], n_bytes - got)
            if n == 0:
                raise IPIConnectionError(f"i-PI closed the {self.where} without sending EXIT (it stopped or "
                                         "crashed; see its output)")
            got += n
        return bytes(buffer)

    def _recv_array(self, dtype, count: int) -> np.ndarray:
        dtype = np.dtype(dtype)
        return np.frombuffer(self._recv(dtype.itemsize * count), dtype=dtype).copy()

    # -- serving -------------------------------------------------------------------------
    def run(self) -> int:
        """Connect, serve until i-PI sends EXIT, close; returns the number of force evaluations."""
        if self._sock is None:
            self.connect()
        initialized, pending, batch = False, None, 1
        try:
            while True:
                header = self._recv(HEADER_BYTES).decode("ascii", errors="replace").strip()
                if header == "STATUS":
                    reply = "NEEDINIT" if not initialized else "HAVEDATA" if pending is not None else "READY"
                    self._sock.sendall(_header(reply))
                elif header == "INIT":
                    replica, length = self._recv_array(np.int32, 2)
                    parameters = self._recv(int(length)).decode("utf-8", errors="replace")
                    batch = _batch_size(parameters)
                    log.info("i-PI INIT: replica %d, parameters %r", int(replica), parameters)
                    initialized = True
                elif header == "POSDATA":
                    pending = self._evaluate(*self._read_positions(batch))
                elif header == "GETFORCE":
                    if pending is None:
                        raise IPIConnectionError("i-PI asked for forces (GETFORCE) before sending positions; "
                                                 "the server does not follow the i-PI protocol")
                    self._sock.sendall(_header("FORCEREADY") + _force_payload(pending, batch))
                    pending = None
                elif header == "EXIT":
                    log.info("i-PI sent EXIT after %d force evaluations", self.n_evaluations)
                    return self.n_evaluations
                else:
                    raise IPIConnectionError(f"unexpected message {header!r} from i-PI on the {self.where}")
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as err:
            raise IPIConnectionError(f"i-PI broke the connection on the {self.where} after {self.n_evaluations} force "
                                     f"evaluations ({err.strerror or type(err).__name__}); it stopped or crashed: "
                                     "see its output, then restart it from its checkpoint") from None
        finally:
            self.close()

    def _read_positions(self, batch: int):
        if batch == 1:
            cells = self._recv_array(np.float64, 18)[:9].reshape(1, 3, 3)  # the inverse cell is not needed
            n_atoms = int(self._recv_array(np.int32, 1)[0])
            self._check_atom_count(n_atoms)
            positions = self._recv_array(np.float64, 3 * n_atoms).reshape(1, n_atoms, 3)
        else:
            n_atoms = int(self._recv_array(np.int32, 1)[0])
            self._check_atom_count(n_atoms)
            cells = self._recv_array(np.float64, 18 * batch).reshape(batch, 2, 3, 3)[:, 0]
            positions = self._recv_array(np.float64, 3 * n_atoms * batch).reshape(batch, n_atoms, 3)
        # i-PI's h has the lattice vectors as columns; qmml's cell has them as rows
        return positions * units.BOHR_A, np.transpose(cells, (0, 2, 1)) * units.BOHR_A

    def _check_atom_count(self, n_atoms: int) -> None:
        if n_atoms != self.system.n_atoms:
            raise InputError(f"i-PI sent {n_atoms} atoms but the qmml system ({self.system.source}) has "
                             f"{self.system.n_atoms}; start i-PI from the same structure, same atoms in the same order")

    def _evaluate(self, positions_A: np.ndarray, cells_A: np.ndarray) -> list:
        """(energy Ha, forces Ha/Bohr, virial Ha) for each structure of the batch."""
        out, previous = [], None
        for x, cell in zip(positions_A, cells_A):
            if previous is not None and np.array_equal(x, previous[0]):  # i-PI pads batches with copies
                out.append(previous[1])
                continue
            result = self.guess.compute(x, cell=None if self.system.cell is None else cell)
            self.n_evaluations += 1
            self.last_result = result
            if self.system.cell is None:
                w = virial(x, result.forces)
            elif result.stress is not None:
                w = -np.asarray(result.stress) * volume(cell)
            else:
                w = np.zeros((3, 3))
                if not self._warned_virial:
                    warnings.warn(f"IPIClient: {self.potential!r} is periodic but gives no stress, so the virial sent "
                                  "to i-PI is zero: its pressure and stress are not meaningful", stacklevel=2)
                    self._warned_virial = True
            values = (result.energy / units.HARTREE_EV, np.asarray(result.forces) / units.HARTREE_PER_BOHR_EV_PER_A,
                      w / units.HARTREE_EV)
            out.append(values)
            previous = (x, values)
        return out


def _batch_size(parameters: str) -> int:
    """The ``batch_size:N`` token of i-PI's INIT string (1 without it)."""
    for token in parameters.split(","):
        key, sep, value = token.partition(":")
        if sep and key.strip() == "batch_size":
            try:
                return max(int(value.strip()), 1)
            except ValueError:
                raise IPIConnectionError(f"i-PI's INIT string has batch_size:{value.strip()!r}, not an integer") \
                    from None
    return 1


def _force_payload(results: list, batch: int) -> bytes:
    n_atoms = np.int32(len(results[0][1]))
    if batch == 1:
        energy, forces, w = results[0]
        # the virial goes transposed, as i-PI's cell-like 3x3 arrays do (W is symmetric for a
        # rotation-invariant potential anyway)
        return (np.float64(energy).tobytes() + n_atoms.tobytes() + np.ascontiguousarray(forces).tobytes()
                + np.ascontiguousarray(w.T).tobytes() + np.int32(0).tobytes())
    energies = np.array([r[0] for r in results], dtype=np.float64)
    forces = np.array([r[1] for r in results], dtype=np.float64)
    virials = np.array([r[2].T for r in results], dtype=np.float64)
    return (energies.tobytes() + n_atoms.tobytes() + forces.tobytes() + virials.tobytes()
            + np.zeros(len(results), dtype=np.int32).tobytes())
