#include "app/cli.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace agentkv {
namespace {

namespace fs = std::filesystem;

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("agentkv-cli-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    for (const char* v : {"AGENTKV_PORT", "AGENTKV_CONFIG", "AGENTKV_API_KEYS", "AGENTKV_ADMIN_KEY",
                          "AGENTKV_SWA_FULL", "AGENTKV_SLOTS", "AGENTKV_ALLOWED_HOSTS",
                          "AGENTKV_ALLOW_NO_AUTH", "AGENTKV_URL", "AGENTKV_ADMIN_KEY_FILE"}) {
      ::unsetenv(v);
    }
  }
  void TearDown() override {
    SetUp();
    fs::remove_all(dir_);
  }
  fs::path Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return dir_ / name;
  }
  int Parse(std::vector<std::string> args, CliSettings* out) {
    args.insert(args.begin(), "agentkv");
    std::vector<const char*> argv;
    for (const std::string& a : args) argv.push_back(a.c_str());
    return ParseCommandLine(static_cast<int>(argv.size()), argv.data(), out);
  }
  fs::path dir_;
};

TEST_F(CliTest, FlagsBeatTheEnvironmentWhichBeatsTheConfigFileWhichBeatsDefaults) {
  const fs::path config = Write("a.toml", "[serve]\nport = 9001\nslots = 3\nmax-queue = 7\n");
  CliSettings defaults, file, env, flag;
  ASSERT_EQ(Parse({"serve"}, &defaults), -1);
  EXPECT_EQ(defaults.daemon.proxy.port, 8090);
  ASSERT_EQ(Parse({"serve", "--config", config.string()}, &file), -1);
  EXPECT_EQ(file.daemon.proxy.port, 9001);
  EXPECT_EQ(file.daemon.launch->slots, 3);
  ::setenv("AGENTKV_PORT", "9002", 1);
  ASSERT_EQ(Parse({"serve", "--config", config.string()}, &env), -1);
  EXPECT_EQ(env.daemon.proxy.port, 9002);
  EXPECT_EQ(env.daemon.queue.max_waiting, 7) << "the file still fills the rest";
  ASSERT_EQ(Parse({"serve", "--config", config.string(), "--port", "9003"}, &flag), -1);
  EXPECT_EQ(flag.daemon.proxy.port, 9003);
}

TEST_F(CliTest, ConnectionBoundsHaveDefaultsAndFlags) {
  CliSettings defaults, set;
  ASSERT_EQ(Parse({"serve"}, &defaults), -1);
  EXPECT_EQ(defaults.daemon.proxy.connections.max_connections, 512);
  EXPECT_EQ(defaults.daemon.proxy.connections.max_connections_per_client, 256);
  EXPECT_EQ(defaults.daemon.proxy.connections.request_timeout, std::chrono::seconds(30));
  ASSERT_EQ(Parse({"serve", "--max-connections", "10", "--max-connections-per-client", "4",
                   "--request-timeout-ms", "1500"},
                  &set),
            -1);
  EXPECT_EQ(set.daemon.proxy.connections.max_connections, 10);
  EXPECT_EQ(set.daemon.proxy.connections.max_connections_per_client, 4);
  EXPECT_EQ(set.daemon.proxy.connections.request_timeout, std::chrono::milliseconds(1500));
  EXPECT_GT(Parse({"serve", "--max-connections", "0"}, &set), 0);
}

TEST_F(CliTest, TheConfigFileCanComeFromTheEnvironmentAndFlagsFromBooleans) {
  ::setenv("AGENTKV_CONFIG", Write("b.toml", "[serve]\nport = 9100\n").c_str(), 1);
  ::setenv("AGENTKV_SWA_FULL", "true", 1);
  CliSettings s;
  ASSERT_EQ(Parse({"serve", "--upstream", "http://127.0.0.1:1"}, &s), -1);
  EXPECT_EQ(s.daemon.proxy.port, 9100);
  EXPECT_TRUE(s.daemon.kv.swa_full);
  EXPECT_FALSE(s.daemon.launch) << "fronting an upstream: nothing to start";
  EXPECT_EQ(s.daemon.upstream.base_url, "http://127.0.0.1:1");
}

TEST_F(CliTest, ArgumentsAfterTheSeparatorGoToLlamaServer) {
  CliSettings s;
  ASSERT_EQ(Parse({"serve", "--slots", "4", "--", "--ctx-size", "8192", "-ctk", "q8_0"}, &s), -1);
  ASSERT_TRUE(s.daemon.launch);
  EXPECT_EQ(s.daemon.launch->slots, 4);
  EXPECT_EQ(s.daemon.launch->extra_args,
            (std::vector<std::string>{"--ctx-size", "8192", "-ctk", "q8_0"}));
}

TEST_F(CliTest, KeysComeFromFilesOrTheEnvironment) {
  CliSettings files;
  ASSERT_EQ(Parse({"serve", "--api-key-file", Write("keys", "# rotation\nk1\n k2 \n").string(),
                   "--admin-key-file", Write("admin", "adm\n").string()},
                  &files),
            -1);
  EXPECT_EQ(files.daemon.proxy.auth.api_keys, (std::vector<std::string>{"k1", "k2"}));
  EXPECT_EQ(files.daemon.proxy.auth.admin_key, "adm");
  ::setenv("AGENTKV_API_KEYS", "e1,e2", 1);
  ::setenv("AGENTKV_ADMIN_KEY", "eadm", 1);
  CliSettings env;
  ASSERT_EQ(Parse({"serve"}, &env), -1);
  EXPECT_EQ(env.daemon.proxy.auth.api_keys, (std::vector<std::string>{"e1", "e2"}));
  EXPECT_EQ(env.daemon.proxy.auth.admin_key, "eadm");
}

TEST_F(CliTest, AKeyMayNameItsTenantAndAMalformedTenantStopsAgentkv) {
  CliSettings s;
  ASSERT_EQ(
      Parse({"serve", "--api-key-file",
             Write("keys", "old\nnew @0123456789abcdef\nci team-a\nlaptop team-a\n").string()},
            &s),
      -1);
  EXPECT_EQ(s.daemon.proxy.auth.api_keys, (std::vector<std::string>{"old", "new", "ci", "laptop"}));
  EXPECT_EQ(s.daemon.proxy.auth.tenants,
            (std::vector<std::string>{"", "@0123456789abcdef", "team-a", "team-a"}));
  for (const char* bad : {"k team/a\n", "k a b\n", "k @0123\n", "k @0123456789ABCDEF\n"}) {
    EXPECT_EQ(Parse({"serve", "--api-key-file", Write("bad", bad).string()}, &s), 2) << bad;
  }
  ::setenv("AGENTKV_API_KEYS", "e1 team,e2 team", 1);
  CliSettings env;
  ASSERT_EQ(Parse({"serve"}, &env), -1);
  EXPECT_EQ(env.daemon.proxy.auth.tenants, (std::vector<std::string>{"team", "team"}));
}

TEST_F(CliTest, AKeyVariableThatNamesNoKeyStopsAgentkv) {
  CliSettings s;
  for (const char* value : {",", " , ", "#"}) {
    ::setenv("AGENTKV_API_KEYS", value, 1);
    EXPECT_EQ(Parse({"serve"}, &s), 2) << "'" << value << "'";
  }
  ::setenv("AGENTKV_API_KEYS", "", 1);
  EXPECT_EQ(Parse({"serve"}, &s), -1) << "empty is unset, as for every AGENTKV_ variable";
  EXPECT_GT(Parse({"serve", "--api-key-file", Write("none", "\n# no key\n").string()}, &s), 0);
}

TEST_F(CliTest, ANonLoopbackHostNeedsKeysOrAnExplicitOptIn) {
  CliSettings s;
  for (const char* host : {"0.0.0.0", "::", "10.0.0.5", "agents.lan"}) {
    EXPECT_EQ(Parse({"serve", "--host", host}, &s), 2) << host;
    CliSettings opted;
    EXPECT_EQ(Parse({"serve", "--host", host, "--allow-no-auth"}, &opted), -1) << host;
  }
  for (const char* host : {"127.0.0.1", "127.0.0.2", "localhost", "::1"}) {
    EXPECT_EQ(Parse({"serve", "--host", host}, &s), -1) << host;
  }
  ::setenv("AGENTKV_API_KEYS", "k1", 1);
  CliSettings keyed;
  EXPECT_EQ(Parse({"serve", "--host", "0.0.0.0"}, &keyed), -1);
}

TEST_F(CliTest, AllowedHostsAddToTheListenAddressAndCorsOriginsAreAList) {
  CliSettings def;
  ASSERT_EQ(Parse({"serve"}, &def), -1);
  EXPECT_EQ(def.daemon.proxy.browser.allowed_hosts, std::vector<std::string>{"127.0.0.1"});
  EXPECT_TRUE(def.daemon.proxy.browser.cors_origins.empty()) << "no CORS by default";
  CliSettings s;
  ASSERT_EQ(
      Parse({"serve", "--host", "10.0.0.5", "--allow-no-auth", "--allowed-hosts",
             "Agents.LAN,fd00::5", "--cors-origins", "https://app.example,http://localhost:3000"},
            &s),
      -1);
  EXPECT_EQ(s.daemon.proxy.browser.allowed_hosts,
            (std::vector<std::string>{"10.0.0.5", "agents.lan", "[fd00::5]"}));
  EXPECT_EQ(s.daemon.proxy.browser.cors_origins,
            (std::vector<std::string>{"https://app.example", "http://localhost:3000"}));
  CliSettings wildcard;
  ASSERT_EQ(Parse({"serve", "--host", "0.0.0.0", "--allow-no-auth"}, &wildcard), -1);
  EXPECT_TRUE(wildcard.daemon.proxy.browser.allowed_hosts.empty()) << "loopback names only";
  EXPECT_EQ(Parse({"serve", "--allowed-hosts", "agents.lan:8090"}, &s), 2) << "no ports";
}

TEST_F(CliTest, TheBrowserSettingsComeFromTheConfigFileAndTheEnvironment) {
  const fs::path config =
      Write("c.toml",
            "[serve]\nallowed-hosts = [\"a.lan\", \"b.lan\"]\ncors-origins = "
            "\"https://app.example\"\nallow-no-auth = true\nhost = \"0.0.0.0\"\n");
  CliSettings file;
  ASSERT_EQ(Parse({"serve", "--config", config.string()}, &file), -1);
  EXPECT_EQ(file.daemon.proxy.browser.allowed_hosts, (std::vector<std::string>{"a.lan", "b.lan"}));
  EXPECT_EQ(file.daemon.proxy.browser.cors_origins,
            std::vector<std::string>{"https://app.example"});
  ::setenv("AGENTKV_ALLOWED_HOSTS", "c.lan,d.lan", 1);
  CliSettings env;
  ASSERT_EQ(Parse({"serve", "--config", config.string()}, &env), -1);
  EXPECT_EQ(env.daemon.proxy.browser.allowed_hosts, (std::vector<std::string>{"c.lan", "d.lan"}));
}

TEST_F(CliTest, InvalidValuesAreRefusedWithAnExitCode) {
  CliSettings s;
  EXPECT_GT(Parse({"serve", "--port", "abc"}, &s), 0);
  EXPECT_GT(Parse({"serve", "--slots", "0"}, &s), 0);
  EXPECT_GT(Parse({"serve", "--save-policy", "sometimes"}, &s), 0);
  EXPECT_GT(Parse({"serve", "--config", (dir_ / "missing.toml").string()}, &s), 0);
  EXPECT_GT(Parse({"serve", "--admin-key-file", Write("two", "a\nb\n").string()}, &s), 0);
  EXPECT_GT(Parse({"serve", "--unknown"}, &s), 0);
  EXPECT_GT(Parse({}, &s), 0) << "a subcommand is required";
  EXPECT_EQ(Parse({"serve", "--help"}, &s), 0);
}

TEST_F(CliTest, StatusFindsAgentkvAndItsAdminKeyWhereServeWouldPutThem) {
  CliSettings defaults;
  ASSERT_EQ(Parse({"status"}, &defaults), -1);
  EXPECT_EQ(defaults.command, CliSettings::Command::kStatus);
  EXPECT_EQ(defaults.status.url, "http://127.0.0.1:8090");
  EXPECT_EQ(defaults.status.admin_key, "");
  EXPECT_EQ(defaults.status.watch.count(), 0);

  const fs::path key = Write("admin.key", "from-file\n");
  const fs::path config = Write("s.toml",
                                "[serve]\nhost = \"0.0.0.0\"\nport = 9100\n"
                                "admin-key-file = \"" +
                                    key.string() + "\"\n");
  CliSettings file;
  ASSERT_EQ(Parse({"status", "--config", config.string()}, &file), -1);
  EXPECT_EQ(file.status.url, "http://127.0.0.1:9100") << "a wildcard host is reached on loopback";
  EXPECT_EQ(file.status.admin_key, "from-file");

  ::setenv("AGENTKV_CONFIG", config.string().c_str(), 1);
  ::setenv("AGENTKV_URL", "http://agents.lan:9200", 1);
  ::setenv("AGENTKV_PORT", "1", 1);  // serve's: not an option of status
  CliSettings env;
  ASSERT_EQ(Parse({"status", "--json", "--watch", "2.5", "--count", "3"}, &env), -1);
  EXPECT_EQ(env.status.url, "http://agents.lan:9200");
  EXPECT_EQ(env.status.admin_key, "from-file");
  EXPECT_TRUE(env.status.json);
  EXPECT_EQ(env.status.watch.count(), 2500);
  EXPECT_EQ(env.status.count, 3);

  ::unsetenv("AGENTKV_CONFIG");
  ::setenv("AGENTKV_ADMIN_KEY", "from-env", 1);
  CliSettings flag;
  ASSERT_EQ(Parse({"status", "--url", "http://[::1]:9300", "--agents", "5"}, &flag), -1);
  EXPECT_EQ(flag.status.url, "http://[::1]:9300");
  EXPECT_EQ(flag.status.admin_key, "from-env");
  EXPECT_EQ(flag.status.agents, 5u);
  CliSettings both;
  ASSERT_EQ(Parse({"status", "--admin-key-file", key.string()}, &both), -1);
  EXPECT_EQ(both.status.admin_key, "from-file") << "the file wins, as for serve";

  CliSettings bad;
  EXPECT_GT(Parse({"status", "--watch", "0"}, &bad), 0);
  EXPECT_GT(Parse({"status", "--agents", "501"}, &bad), 0);
  EXPECT_GT(Parse({"status", "--port", "1"}, &bad), 0);
  EXPECT_GT(Parse({"status", "--admin-key-file", Write("two", "a\nb\n").string()}, &bad), 0);
}

TEST_F(CliTest, TheExampleConfigFileParses) {
  CliSettings s;
  ASSERT_EQ(Parse({"serve", "--config", AGENTKV_EXAMPLE_CONFIG}, &s), -1);
  EXPECT_EQ(s.daemon.proxy.host, "127.0.0.1");
}

TEST_F(CliTest, AKvRamBudgetSizesOnlyALlamaServerAgentkvStarts) {
  CliSettings s;
  ASSERT_EQ(Parse({"serve", "--kv-ram-budget", "4000000000", "--ctx-per-slot", "8192"}, &s), -1);
  EXPECT_EQ(s.daemon.kv_ram_budget, 4000000000u);
  EXPECT_EQ(s.daemon.ctx_per_slot, 8192);
  CliSettings upstream;
  EXPECT_EQ(
      Parse({"serve", "--upstream", "http://127.0.0.1:8080", "--kv-ram-budget", "1"}, &upstream),
      2);
}

TEST_F(CliTest, AgentsArePerApiKeyUnlessTheNamespaceIsShared) {
  CliSettings per_key, shared, bad;
  ASSERT_EQ(Parse({"serve"}, &per_key), -1);
  EXPECT_TRUE(per_key.daemon.proxy.agents_per_key);
  ASSERT_EQ(Parse({"serve", "--agent-namespace", "shared"}, &shared), -1);
  EXPECT_FALSE(shared.daemon.proxy.agents_per_key);
  EXPECT_GT(Parse({"serve", "--agent-namespace", "global"}, &bad), 0);
}

}  // namespace
}  // namespace agentkv
