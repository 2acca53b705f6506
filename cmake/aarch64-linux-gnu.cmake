# Cross-compiles for 64-bit Arm Linux from an x86-64 Debian/Ubuntu host with
# the distribution's cross compiler (g++-aarch64-linux-gnu) and multiarch
# arm64 packages (libspdlog-dev:arm64, ...), as scripts/arm64-check.sh does.
# Tests run under qemu-user (qemu-user-static): ctest and
# gtest_discover_tests go through CMAKE_CROSSCOMPILING_EMULATOR, so they work
# with or without binfmt_misc.
#
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# At link time the cross toolchain's own libraries (libc, libstdc++, libgomp)
# live in /usr/aarch64-linux-gnu; the arm64 packages in /usr/lib/aarch64-linux-gnu.
# Headers of header-only and arch-independent packages stay in /usr/include
# and /usr/share, so the host prefix is searched too, but never for programs.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /usr)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# pkg-config (cpp-httplib) must read the arm64 .pc files, not the host's.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# At run time every arm64 library, the dynamic loader included, comes from the
# multiarch packages (libc6:arm64, libgomp1:arm64, ...), never from the cross
# toolchain's /usr/aarch64-linux-gnu: so no `-L /usr/aarch64-linux-gnu`. With it
# qemu took that directory's ld.so (glibc 2.36-8) and the multiarch libc
# (2.36-9+deb12u14), and the first pthread_create spun forever in the mismatch.
find_program(AGENTKV_QEMU_AARCH64 NAMES qemu-aarch64-static qemu-aarch64 REQUIRED)
set(CMAKE_CROSSCOMPILING_EMULATOR "${AGENTKV_QEMU_AARCH64}")
