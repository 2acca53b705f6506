# shellcheck shell=bash
# Shell helpers shared by the checks that install agentkv's packages and
# talk to it as a framework would (scripts/systemd-check.sh,
# scripts/arm64-package-check.sh). Sourced, not run; the sourcing script
# sets STEP_T0=$SECONDS and defines its own fail().

say() { printf '\033[1m== %s\033[0m\n' "$*"; }
step() { printf '   (%d s)\n' $((SECONDS - STEP_T0)); STEP_T0=$SECONDS; say "$*"; }
pass() { printf '   ok: %s\n' "$*"; }

# until_ok SECONDS CMD...: CMD, every 0.2 s, until it succeeds or SECONDS pass.
until_ok() {
  local limit=$1 start=$SECONDS
  shift
  until "$@" >/dev/null 2>&1; do
    [ $((SECONDS - start)) -lt "$limit" ] || return 1
    sleep 0.2
  done
}

# A message of about N words, different for every (agent, turn): words TAG N
words() { seq "$2" | sed "s/^/$1-/" | paste -sd' ' -; }

# conversation_request CONVERSATION MESSAGE: prints the chat request a
# framework sends for the conversation so far (a JSON file of messages, none
# if it is missing) and its new user message.
conversation_request() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import json, os, sys
path, message = sys.argv[1], sys.argv[2]
messages = json.load(open(path)) if os.path.exists(path) else []
messages.append({"role": "user", "content": message})
print(json.dumps({"messages": messages, "max_tokens": 4, "temperature": 0}))
PY
}

# conversation_record CONVERSATION REQUEST ANSWER: the request's messages
# and the answer become the conversation; prints the tokens llama-server
# prefilled for the answer (timings.prompt_n). Fails if ANSWER is not a
# chat completion.
conversation_record() {
  /usr/bin/python3 - "$1" "$2" "$3" <<'PY'
import json, sys
path, request, answer = sys.argv[1:4]
messages = json.load(open(request))["messages"]
reply = json.load(open(answer))
messages.append({"role": "assistant", "content": reply["choices"][0]["message"]["content"]})
json.dump(messages, open(path, "w"))
print(reply["timings"]["prompt_n"])
PY
}

# The X-Agentkv-Placement value in response headers read from stdin.
placement_of() { sed -n 's/^[Xx]-[Aa]gentkv-[Pp]lacement: *\([a-z]*\).*/\1/p'; }
