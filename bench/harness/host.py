"""Which host and which llama.cpp kernels a benchmark ran on, recorded in every
result so that figures of different hosts are never mixed up: an Arm run with
KleidiAI and one without, or a 2-core VM and a 64-core Graviton, get different
host ids."""
import os
import platform
import re
import subprocess

# Arm's MIDR part numbers (implementer 0x41) of the server cores that /proc/cpuinfo
# names only by number: AWS Graviton 2, 3, 4 and Azure Cobalt 100 among them.
ARM_PARTS = {"0xd0c": "Neoverse-N1", "0xd40": "Neoverse-V1", "0xd49": "Neoverse-N2",
             "0xd4f": "Neoverse-V2", "0xd8e": "Neoverse-N3", "0xd84": "Neoverse-V3",
             "0xd08": "Cortex-A72", "0xd0b": "Cortex-A76"}
# The CPU features llama.cpp's kernels choose between.
FEATURES = {"aarch64": ("asimd", "asimddp", "asimdhp", "i8mm", "bf16", "sve", "sve2", "sme"),
            "x86_64": ("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16",
                       "avx_vnni", "amx_tile")}


def _cpuinfo():
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return ""


def _field(text, name):
    m = re.search(rf"^{name}\s*:\s*(.+)$", text, re.M)
    return m.group(1).strip() if m else None


def cpu_model(cpuinfo=None, lscpu_text=None):
    """'AMD EPYC', 'Neoverse-N1', ...: /proc/cpuinfo's model name, else lscpu's,
    else the Arm part number's name, else the architecture."""
    cpuinfo = _cpuinfo() if cpuinfo is None else cpuinfo
    name = _field(cpuinfo, "model name")
    if name:
        return name
    if lscpu_text is None:
        try:
            lscpu_text = subprocess.run(["lscpu"], capture_output=True, text=True,
                                        timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            lscpu_text = ""
    name = _field(lscpu_text, "Model name")
    if name and name != "-":
        return name
    part = _field(cpuinfo, "CPU part")
    if part:
        return ARM_PARTS.get(part.lower(), f"Arm part {part}")
    return platform.machine()


def cpu_features(arch, cpuinfo=None):
    cpuinfo = _cpuinfo() if cpuinfo is None else cpuinfo
    flags = set((_field(cpuinfo, "Features") or _field(cpuinfo, "flags") or "").split())
    return [f for f in FEATURES.get(arch, ()) if f in flags]


def kleidiai_from_system_info(text):
    """True or False from llama-server's 'system_info: ... | CPU : NEON = 1 | ...'
    line (KLEIDIAI = 1 is listed only when its kernels are compiled in), None
    without such a line."""
    lines = [ln for ln in text.splitlines() if "system_info:" in ln]
    if not lines:
        return None
    return bool(re.search(r"\bKLEIDIAI = 1\b", lines[0]))


def kleidiai_from_logs(root):
    """The KleidiAI state the first llama-server log under `root` reports."""
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            if not name.endswith(".log"):
                continue
            try:
                with open(os.path.join(dirpath, name), errors="replace") as f:
                    state = kleidiai_from_system_info(f.read())
            except OSError:
                continue
            if state is not None:
                return state
    return None


def kleidiai_in_binary(binary):
    """Whether llama-server (or a libggml*.so beside it) holds KleidiAI's kernels:
    the name of their buffer type, 'CPU_KLEIDIAI', is compiled in only with them.
    None if the files cannot be read. At the pinned commit llama-server prints
    its system_info only at trace verbosity, so this is what a run can tell."""
    real = os.path.realpath(binary)
    d = os.path.dirname(real)
    try:
        libs = [os.path.join(d, n) for n in os.listdir(d)
                if n.startswith("libggml") and ".so" in n]
    except OSError:
        libs = []
    found = False
    for path in [real] + sorted(libs):
        try:
            with open(path, "rb") as f:
                found = found or b"CPU_KLEIDIAI\0" in f.read()
        except OSError:
            if path == real:
                return None
    return found


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def host_id(h):
    """e.g. 'aarch64-neoverse-v2-4core-kleidiai' or 'x86-64-amd-epyc-2core-no-kleidiai'."""
    k = {True: "kleidiai", False: "no-kleidiai"}.get(h["kleidiai"], "kleidiai-unknown")
    return f"{slug(h['arch'])}-{slug(h['cpu_model'])}-{h['cores']}core-{k}"


def describe(llama_build, kleidiai=None, binary=None):
    """The host record: architecture, CPU model, cores, features, KleidiAI.
    `kleidiai` is the state llama-server reported when it ran (see
    kleidiai_from_logs); without it, what the binary holds; without that, the
    build's GGML_CPU_KLEIDIAI."""
    arch = platform.machine()
    source = "llama-server system_info"
    if kleidiai is None and binary:
        kleidiai, source = kleidiai_in_binary(binary), "llama-server binary"
    if kleidiai is None:
        opt = (llama_build or {}).get("GGML_CPU_KLEIDIAI")
        kleidiai = None if opt is None else opt.upper() in ("ON", "1", "TRUE", "YES")
        source = "build option GGML_CPU_KLEIDIAI" if opt is not None else "unknown"
    h = {"arch": arch, "cpu_model": cpu_model(), "cores": os.cpu_count(),
         "cpu_features": cpu_features(arch), "kleidiai": kleidiai, "kleidiai_source": source}
    h["id"] = host_id(h)
    return h
