#pragma once
// agentkv's version: <project version>+<commits>.g<commit>[.dirty] when
// built from a git checkout (cmake/version.cmake), else the project version.

namespace agentkv {

const char* Version();

}  // namespace agentkv
