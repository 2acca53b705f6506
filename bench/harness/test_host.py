"""The host record that keeps results of different hosts apart (harness/host.py)."""
import os
import tempfile
import unittest

from harness import host

GRAVITON3 = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm \
jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs \
paca pacg dcpodp svei8mm svebf16 i8mm bf16 dgh rng
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x1
CPU part\t: 0xd40
CPU revision\t: 1
"""
EPYC = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 fma f16c avx512f\n"
ON = ("system_info: n_threads = 4 (n_threads_batch = 4) / 4 | CPU : NEON = 1 | ARM_FMA = 1 | "
      "FP16_VA = 1 | DOTPROD = 1 | SVE = 1 | MATMUL_INT8 = 1 | KLEIDIAI = 1 | REPACK = 1 |")
OFF = "system_info: n_threads = 2 / 2 | CPU : SSE3 = 1 | AVX2 = 1 | REPACK = 1 |"


class Host(unittest.TestCase):
    def test_an_arm_cpu_is_named_by_its_part_when_nothing_else_names_it(self):
        self.assertEqual(host.cpu_model(GRAVITON3, lscpu_text=""), "Neoverse-V1")
        self.assertEqual(host.cpu_model(GRAVITON3, lscpu_text="Model name: Neoverse-V1\n"),
                         "Neoverse-V1")
        self.assertEqual(host.cpu_model(EPYC, lscpu_text=""), "AMD EPYC")

    def test_features_are_those_llama_cpp_chooses_kernels_by(self):
        self.assertEqual(host.cpu_features("aarch64", GRAVITON3),
                         ["asimd", "asimddp", "asimdhp", "i8mm", "bf16", "sve"])
        self.assertEqual(host.cpu_features("x86_64", EPYC), ["avx2", "fma", "f16c", "avx512f"])

    def test_kleidiai_is_read_from_what_llama_server_reported(self):
        self.assertTrue(host.kleidiai_from_system_info("load\n" + ON + "\nmore KLEIDIAI = 0"))
        self.assertFalse(host.kleidiai_from_system_info(OFF))
        self.assertIsNone(host.kleidiai_from_system_info("no such line"))
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "sweep"))
            with open(os.path.join(d, "sweep", "llama.log"), "w") as f:
                f.write(ON)
            self.assertTrue(host.kleidiai_from_logs(d))
            self.assertIsNone(host.kleidiai_from_logs(os.path.join(d, "none")))

    def test_kleidiai_is_found_in_a_binary_or_the_ggml_libraries_beside_it(self):
        with tempfile.TemporaryDirectory() as d:
            binary = os.path.join(d, "llama-server")
            with open(binary, "wb") as f:
                f.write(b"\x7fELF CPU\0REPACK\0")
            self.assertFalse(host.kleidiai_in_binary(binary))
            with open(os.path.join(d, "libggml-cpu.so"), "wb") as f:
                f.write(b"\x7fELF CPU_KLEIDIAI\0")
            self.assertTrue(host.kleidiai_in_binary(binary))
            self.assertIsNone(host.kleidiai_in_binary(os.path.join(d, "missing")))

    def test_hosts_differing_in_cpu_cores_or_kleidiai_get_different_ids(self):
        a = {"arch": "aarch64", "cpu_model": "Neoverse-V2", "cores": 4, "kleidiai": True}
        self.assertEqual(host.host_id(a), "aarch64-neoverse-v2-4core-kleidiai")
        ids = {host.host_id(dict(a, **change)) for change in
               ({}, {"cores": 64}, {"kleidiai": False}, {"kleidiai": None},
                {"cpu_model": "Neoverse-N1"})}
        self.assertEqual(len(ids), 5)

    def test_without_a_run_the_build_option_says_whether_kleidiai_is_in(self):
        self.assertTrue(host.describe({"GGML_CPU_KLEIDIAI": "ON"})["kleidiai"])
        self.assertFalse(host.describe({"GGML_CPU_KLEIDIAI": "OFF"})["kleidiai"])
        self.assertIsNone(host.describe(None)["kleidiai"])
        self.assertEqual(host.describe(None, kleidiai=True)["kleidiai_source"],
                         "llama-server system_info")


if __name__ == "__main__":
    unittest.main()
