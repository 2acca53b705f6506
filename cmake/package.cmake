# Install rules and Debian packages, with CPack's DEB generator (dpkg-deb and
# dpkg-shlibdeps: no debian/ tree to keep in step with these install rules).
# scripts/package.sh builds both packages and runs lintian on them:
#   agentkv_<version>_<arch>.deb               agentkv, its unit, /etc/default/agentkv
#   agentkv-llama-server_<version>_<arch>.deb  with -DAGENTKV_PACKAGE_LLAMA_SERVER=<binary>
include(GNUInstallDirs)

set(AGENTKV_PACKAGE_LLAMA_SERVER "" CACHE FILEPATH
    "A llama-server binary to package as agentkv-llama-server (empty: none)")
set(AGENTKV_MAINTAINER "agentkv maintainers <maintainers@agentkv.invalid>")
set(pkg ${PROJECT_BINARY_DIR}/package)

# A cross build (cmake/aarch64-linux-gnu.cmake) runs the binary it built
# through its emulator: help2man gets a wrapper of the binary's own name.
set(agentkv_to_run $<TARGET_FILE:agentkv>)
if(CMAKE_CROSSCOMPILING_EMULATOR)
  file(CONFIGURE OUTPUT ${pkg}/emulated/agentkv
       CONTENT "#!/bin/sh\nexec ${CMAKE_CROSSCOMPILING_EMULATOR} ${PROJECT_BINARY_DIR}/agentkv \"$@\"\n")
  file(CHMOD ${pkg}/emulated/agentkv PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
       GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
  set(agentkv_to_run ${pkg}/emulated/agentkv)
endif()

# The man page and the changelogs, for the version of this build.
find_program(HELP2MAN help2man)
if(HELP2MAN)
  add_custom_command(
    OUTPUT ${pkg}/agentkv.1.gz ${pkg}/agentkv/changelog.gz
           ${pkg}/agentkv-llama-server/changelog.gz
    COMMAND sh ${PROJECT_SOURCE_DIR}/packaging/deb/docs.sh ${agentkv_to_run}
            ${PROJECT_BINARY_DIR}/generated/version.txt "${AGENTKV_MAINTAINER}" ${pkg}
    DEPENDS agentkv ${PROJECT_BINARY_DIR}/generated/version.txt
            ${PROJECT_SOURCE_DIR}/packaging/deb/docs.sh ${PROJECT_SOURCE_DIR}/packaging/deb/agentkv.h2m
    COMMENT "man page and changelogs for the packages"
    VERBATIM)
  add_custom_target(agentkv_package_docs ALL DEPENDS ${pkg}/agentkv.1.gz)
  install(FILES ${pkg}/agentkv.1.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT agentkv)
else()
  message(STATUS "help2man not found: packages would lack the man page and changelogs")
endif()

install(TARGETS agentkv RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT agentkv)
# The unit as scripts/graviton.sh installs it, with the packages' paths.
file(READ ${PROJECT_SOURCE_DIR}/configs/agentkv.service unit)
string(REPLACE "# Installed by scripts/graviton.sh to /etc/systemd/system/agentkv.service."
               "# Installed by the agentkv package." unit "${unit}")
string(REPLACE "/usr/local/bin/agentkv" "/usr/bin/agentkv" unit "${unit}")
string(REPLACE "/usr/local/bin/llama-server" "/usr/lib/agentkv/llama-server" unit "${unit}")
file(WRITE ${pkg}/agentkv.service "${unit}")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${PROJECT_SOURCE_DIR}/configs/agentkv.service)
install(FILES ${pkg}/agentkv.service DESTINATION /lib/systemd/system COMPONENT agentkv)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/deb/default DESTINATION /etc/default
        RENAME agentkv COMPONENT agentkv)
install(FILES ${PROJECT_SOURCE_DIR}/configs/agentkv.toml ${PROJECT_SOURCE_DIR}/configs/nginx.conf
              ${PROJECT_SOURCE_DIR}/configs/haproxy.cfg
              ${PROJECT_SOURCE_DIR}/configs/grafana-dashboard.json
              ${PROJECT_SOURCE_DIR}/configs/prometheus-rules.yml
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples COMPONENT agentkv)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/deb/copyright
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/agentkv COMPONENT agentkv)
if(HELP2MAN)
  install(FILES ${pkg}/agentkv/changelog.gz
          DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/agentkv COMPONENT agentkv)
endif()

set(CPACK_COMPONENTS_ALL agentkv)
if(AGENTKV_PACKAGE_LLAMA_SERVER)
  install(PROGRAMS ${AGENTKV_PACKAGE_LLAMA_SERVER} DESTINATION lib/agentkv
          RENAME llama-server COMPONENT llamaserver)
  if(HELP2MAN)
    install(FILES ${pkg}/agentkv-llama-server/changelog.gz
            DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/agentkv-llama-server
            COMPONENT llamaserver)
  endif()
  install(FILES ${PROJECT_SOURCE_DIR}/packaging/deb/copyright-llama-server
          DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/agentkv-llama-server
          RENAME copyright COMPONENT llamaserver)
  list(APPEND CPACK_COMPONENTS_ALL llamaserver)
endif()

set(CPACK_GENERATOR DEB)
# CPack names this machine's architecture; a cross build names its target's.
if(CMAKE_CROSSCOMPILING AND CMAKE_SYSTEM_PROCESSOR STREQUAL "aarch64")
  set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE arm64)
endif()
set(CPACK_PACKAGE_NAME agentkv)
set(CPACK_PACKAGE_VENDOR agentkv)
set(CPACK_PACKAGE_CONTACT "${AGENTKV_MAINTAINER}")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_SECTION misc)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_AGENTKV_PACKAGE_NAME agentkv)
set(CPACK_DEBIAN_AGENTKV_PACKAGE_RECOMMENDS agentkv-llama-server)
set(CPACK_DEBIAN_AGENTKV_DESCRIPTION
    "durable per-agent KV memory in front of llama-server
agentkv fronts llama-server's OpenAI-compatible API for many agents: each
agent's KV cache lives in a llama-server slot while it is active and in a
file when it is not, so a returning agent is restored in milliseconds
instead of prefilled again. Saves are atomic and checked, memory survives
crashes of either process, and the service runs sandboxed under systemd.")
set(CPACK_DEBIAN_AGENTKV_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/deb/postinst ${PROJECT_SOURCE_DIR}/packaging/deb/prerm
    ${PROJECT_SOURCE_DIR}/packaging/deb/postrm ${PROJECT_SOURCE_DIR}/packaging/deb/conffiles)
set(CPACK_DEBIAN_AGENTKV_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_LLAMASERVER_PACKAGE_NAME agentkv-llama-server)
set(CPACK_DEBIAN_LLAMASERVER_DESCRIPTION
    "llama-server for agentkv
llama-server from llama.cpp at the commit agentkv is tested with, built for
this architecture's portable baseline (x86-64-v3 on amd64, armv8.2-a with
dot product on arm64) without network features, at
/usr/lib/agentkv/llama-server, where the agentkv service looks first.")
# The version from git, read when cpack runs (cmake/cpack_version.cmake).
set(CPACK_PROJECT_CONFIG_FILE ${PROJECT_SOURCE_DIR}/cmake/cpack_version.cmake)
set(AGENTKV_VERSION_FILE ${PROJECT_BINARY_DIR}/generated/version.txt)
set(CPACK_AGENTKV_VERSION_FILE ${AGENTKV_VERSION_FILE})
include(CPack)
