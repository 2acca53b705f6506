# Read by cpack: the packages' version is the build's, from git
# (cmake/version.cmake wrote it at the last build).
file(READ "${CPACK_AGENTKV_VERSION_FILE}" CPACK_PACKAGE_VERSION)
set(CPACK_DEBIAN_PACKAGE_VERSION "${CPACK_PACKAGE_VERSION}")
