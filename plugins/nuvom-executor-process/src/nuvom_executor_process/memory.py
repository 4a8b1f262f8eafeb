"""The peak resident memory of the current process, in MB, without psutil.

Linux: ``VmHWM`` from ``/proc/self/status`` (``ru_maxrss`` would include the
spawning parent's peak).  Other POSIX: ``resource.getrusage(RUSAGE_SELF).ru_maxrss``
(kilobytes on the BSDs, bytes on macOS).  Windows: ``PeakWorkingSetSize`` from
``GetProcessMemoryInfo`` through ctypes.  ``None`` where neither works; the
executor then never recycles a child for memory (and says so once in the log).
"""

from __future__ import annotations

import sys

_MB = 1024 * 1024


def peak_rss_mb() -> float | None:
    """Peak resident set size of this process so far, in MB (never decreases)."""
    if sys.platform == "win32":
        return _windows_peak_mb()
    hwm = _linux_hwm_mb()
    if hwm is not None:
        return hwm
    try:
        import resource
    except ImportError:  # pragma: no cover - every POSIX CPython has it
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if sys.platform == "darwin":
        return peak / _MB
    return peak / 1024


def _linux_hwm_mb() -> float | None:
    """``VmHWM`` from /proc: the peak of *this* process image.

    Linux carries ``ru_maxrss`` across fork + exec, so a spawned child would
    report its parent's peak (a worker's, or a test runner's hundreds of MB);
    VmHWM starts afresh with the new image.
    """
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _windows_peak_mb() -> float | None:  # pragma: no cover - exercised on Windows only
    import ctypes
    from ctypes import wintypes

    class ProcessMemoryCounters(ctypes.Structure):
        _fields_ = [
            ("cb", wintypes.DWORD),
            ("PageFaultCount", wintypes.DWORD),
            ("PeakWorkingSetSize", ctypes.c_size_t),
            ("WorkingSetSize", ctypes.c_size_t),
            ("QuotaPeakPagedPoolUsage", ctypes.c_size_t),
            ("QuotaPagedPoolUsage", ctypes.c_size_t),
            ("QuotaPeakNonPagedPoolUsage", ctypes.c_size_t),
            ("QuotaNonPagedPoolUsage", ctypes.c_size_t),
            ("PagefileUsage", ctypes.c_size_t),
            ("PeakPagefileUsage", ctypes.c_size_t),
        ]

    try:
        counters = ProcessMemoryCounters()
        counters.cb = ctypes.sizeof(counters)
        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
        kernel32.GetCurrentProcess.restype = wintypes.HANDLE
        get_info = kernel32.K32GetProcessMemoryInfo
        get_info.argtypes = [wintypes.HANDLE, ctypes.POINTER(ProcessMemoryCounters), wintypes.DWORD]
        get_info.restype = wintypes.BOOL
        if not get_info(kernel32.GetCurrentProcess(), ctypes.byref(counters), counters.cb):
            return None
        return float(counters.PeakWorkingSetSize) / _MB
    except (OSError, AttributeError):
        return None
