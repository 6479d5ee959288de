// The root filesystem images (images/build): the common tools in every one,
// pip/venv and npm where their language is, python-data's stack, and the
// choice of image through the CLI and the API, on real VMs (TCG here).

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/cli_fixture.h"
#include "support/daemon_fixture.h"

namespace airlock::testing {
namespace {

using nlohmann::json;

// Each tool runs and does its job; a missing one is named. `file` reads
// libmagic's database, git makes a commit, the TLS bundle is whole.
constexpr const char* kToolScript = R"SH(
set -eu
for tool in bash which find xargs grep sed gawk awk diff cmp ps top tar gzip bzip2 xz zip unzip file less curl wget git jq; do
  command -v "$tool" >/dev/null || { echo "missing: $tool"; exit 1; }
done
cd /home/sandbox
printf 'b 2\na 1\nb 3\n' | awk '{s[$1]+=$2} END {for (k in s) print k, s[k]}' | sort | tr '\n' ';'; echo
echo '{"a":[1,2,3]}' | jq -c '.a | add'
ps -o comm= -p $$
echo hello >f
gzip -k f && bzip2 -k f && xz -k f && zip -q f.zip f && tar czf f.tgz f
rm f
echo "$(gunzip -c f.gz) $(bzcat f.bz2) $(xzcat f.xz) $(unzip -p f.zip) $(tar xzf f.tgz -O)"
file -b f.gz | cut -d, -f1
diff <(echo same) <(echo same) && echo diff-ok
find . -name 'f.*' | sort | xargs echo
grep -c 'BEGIN CERTIFICATE' /etc/ssl/certs/ca-certificates.crt | awk '{print ($1 > 100) ? "certs-ok" : "certs-few"}'
git init -q repo && cd repo && echo x >x && git add x &&
  git -c user.email=s@sandbox -c user.name=s commit -q -m first && git log --format=%s
curl --version | head -n1 | cut -d' ' -f1
wget --version | head -n1 | cut -d' ' -f1-2
less --version | head -n1 | cut -d' ' -f1
)SH";

constexpr const char* kToolOutput =
    "a 1;b 5;\n6\nbash\nhello hello hello hello hello\ngzip compressed data\ndiff-ok\n"
    "./f.bz2 ./f.gz ./f.tgz ./f.xz ./f.zip\ncerts-ok\nfirst\ncurl\nGNU Wget\nless\n";

// Every image, fresh VMs (no template per image and language: the tools are on disk).
TEST_F(Cli, EveryImageHasTheCommonTools) {
  for (const char* image : {"shell", "python", "javascript", "python-data", "go"}) {
    auto result = airlock(
        {"run", "--image", image, "--lang", "shell", "--no-snapshot", "--timeout", "120", kToolScript});
    EXPECT_EQ(result.exit_code, 0) << image << ": " << result.err << result.out;
    EXPECT_EQ(result.out, kToolOutput) << image;
  }
}

TEST_F(Cli, PythonHasPipVenvAndTrustsTheCaBundle) {
  auto result = airlock({"run", "--lang", "python", "--no-snapshot", "--timeout", "120", R"PY(
import ssl, subprocess, sys, ensurepip
context = ssl.create_default_context()
print("ca", len(context.get_ca_certs()) > 100)
print(subprocess.run(["pip", "--version"], capture_output=True, text=True).stdout.split()[0])
subprocess.run([sys.executable, "-m", "venv", "--without-pip", "/home/sandbox/env"], check=True)
print(subprocess.run(["/home/sandbox/env/bin/python", "-c", "import sys; print(sys.prefix)"],
                     capture_output=True, text=True).stdout.strip())
print("ensurepip", bool(ensurepip.version()))
)PY"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "ca True\npip\n/home/sandbox/env\nensurepip True\n");
}

TEST_F(Cli, JavascriptHasNpm) {
  auto result =
      airlock({"run", "--lang", "shell", "--image", "javascript", "--no-snapshot", "--timeout", "120",
               "npm --version | cut -d. -f1; node -e 'console.log(typeof require(\"https\").get)'"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "9\nfunction\n");
}

// python-data from its template (preloaded modules), and with no --lang:
// the image's first language.
TEST_F(Cli, PythonDataComputesAndDrawsFromItsTemplate) {
  auto result = airlock({"run", "--image", "python-data", "--timeout", "120", R"PY(
import sys
print("preloaded", all(name in sys.modules for name in ("numpy", "pandas", "matplotlib.pyplot")))
import numpy as np, pandas as pd, matplotlib, matplotlib.pyplot as plt
from scipy import stats
import sklearn, yaml, requests, openpyxl
frame = pd.DataFrame({"k": ["a", "b", "a", "b"], "v": [1, 2, 3, 4]})
print(frame.groupby("k")["v"].sum().to_dict())
print(matplotlib.get_backend().lower(), round(float(stats.norm.cdf(0)), 2), int(np.arange(5).sum()))
figure, axes = plt.subplots()
axes.plot([1, 2, 3], [3, 1, 2])
figure.savefig("/home/sandbox/plot.png")
data = open("/home/sandbox/plot.png", "rb").read()
print(data[:8] == b"\x89PNG\r\n\x1a\n", len(data) > 1000)
)PY"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "preloaded True\n{'a': 4, 'b': 6}\nagg 0.5 10\nTrue True\n");
  EXPECT_EQ(result.err, "");
}

// Go from its template (the build cache warm): the program's own exit
// status and arguments, and a compile error as go build reports it.
TEST_F(Cli, GoBuildsAndRunsAProgram) {
  auto hello = airlock({"run", "--lang", "go", "--timeout", "120", R"GO(package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Println(42, len(os.Args))
	fmt.Fprintln(os.Stderr, "to stderr")
	os.Exit(3)
}
)GO"});
  EXPECT_EQ(hello.exit_code, 3) << hello.err;
  EXPECT_EQ(hello.out, "42 1\n");
  EXPECT_EQ(hello.err, "to stderr\n");

  auto broken = airlock(
      {"run", "--lang", "go", "--timeout", "120", "package main\n\nfunc main() {\n\tundefined_name()\n}\n"});
  EXPECT_EQ(broken.exit_code, 2) << broken.err;  // go build's status for a build error
  EXPECT_NE(broken.err.find("main.go:4:2: undefined: undefined_name"), std::string::npos) << broken.err;
  EXPECT_EQ(broken.out, "");
}

TEST_F(Cli, ImageChoicesThatCannotBeFailBeforeAnyVmStarts) {
  struct Case {
    std::vector<std::string> args;
    const char* message;
  };
  const std::vector<Case> cases = {
      {{"run", "--image", "nope", "x"},
       "unknown image 'nope' (available: go, javascript, python, python-data, shell)"},
      {{"run", "--image", "python-data", "--lang", "javascript", "x"},
       "image 'python-data' has no javascript interpreter (its languages: python, shell)"},
      {{"run", "--image", "../etc", "x"}, "image name '../etc' is invalid"},
      {{"run", "x"}, "give a language (--lang) or an image (--image)"},
  };
  for (const auto& test_case : cases) {
    auto result = airlock(test_case.args);
    EXPECT_EQ(result.exit_code, 125) << test_case.message << "\n" << result.err;
    EXPECT_NE(result.err.find(test_case.message), std::string::npos)
        << "expected '" << test_case.message << "' in: " << result.err;
    EXPECT_TRUE(our_qemu_processes().empty());
  }
}

class ImagesThroughTheDaemon : public DaemonFixture {};

// Through airlockd: a pool of python-data guests, its runs pool hits with
// numpy's generator drawing afresh in each clone; a sandbox of the image
// says so; bad choices are 400s naming what is wrong.
TEST_F(ImagesThroughTheDaemon, PythonDataPoolAndSandbox) {
  ASSERT_TRUE(daemon_->start({"--pool-size", "0"}));
  auto pool = daemon_->post("/v1/pools", R"J({"image": "python-data", "target": 1})J");
  ASSERT_EQ(pool.status, 201) << pool.body;
  const json made = json::parse(pool.body);
  EXPECT_EQ(made["language"], "python");
  EXPECT_EQ(made["image"], "python-data");
  EXPECT_EQ(made["name"], "python-img-python-data-256m");
  ASSERT_TRUE(daemon_->wait_for_ready(made["name"])) << daemon_->get("/v1/pools").body;

  std::vector<std::string> draws;
  for (int i = 0; i < 2; ++i) {
    auto run = daemon_->post(
        "/v1/run",
        R"J({"image": "python-data", "code": "import numpy as np\nprint(np.random.randint(1 << 30))"})J");
    ASSERT_EQ(run.status, 200) << run.body;
    const json result = json::parse(run.body);
    EXPECT_EQ(result["status"], "ok") << run.body;
    EXPECT_TRUE(result["pool_hit"].get<bool>()) << run.body;
    draws.push_back(result["stdout"]);
    if (i == 0) {
      ASSERT_TRUE(daemon_->wait_for_ready(made["name"])) << daemon_->get("/v1/pools").body;
    }
  }
  EXPECT_NE(draws[0], draws[1]) << "numpy's generator repeated across clones";

  auto sandbox = daemon_->post("/v1/sandboxes", R"J({"image": "python-data"})J");
  ASSERT_EQ(sandbox.status, 201) << sandbox.body;
  const json created = json::parse(sandbox.body);
  EXPECT_EQ(created["image"], "python-data");
  EXPECT_EQ(created["language"], "python");
  const std::string id = created["id"];
  auto exec = daemon_->post(
      "/v1/sandboxes/" + id + "/execs",
      R"J({"argv": ["sh", "-c", "echo $MPLBACKEND; python3 -c 'import pandas; print(pandas.__name__)'"]})J");
  EXPECT_EQ(exec.status, 200) << exec.body;
  EXPECT_NE(exec.body.find("Agg\\npandas\\n"), std::string::npos) << exec.body;
  EXPECT_EQ(daemon_->request({"-X", "DELETE", "http://airlockd/v1/sandboxes/" + id}).status, 200);

  auto unknown = daemon_->post("/v1/run", R"J({"image": "nope", "code": "1"})J");
  EXPECT_EQ(unknown.status, 400);
  EXPECT_NE(unknown.body.find("unknown image 'nope'"), std::string::npos) << unknown.body;
  auto mismatched = daemon_->post("/v1/sandboxes", R"J({"image": "python-data", "language": "javascript"})J");
  EXPECT_EQ(mismatched.status, 400);
  EXPECT_NE(mismatched.body.find("has no javascript interpreter"), std::string::npos) << mismatched.body;
  auto neither = daemon_->post("/v1/run", R"J({"code": "1"})J");
  EXPECT_EQ(neither.status, 400);
  EXPECT_NE(neither.body.find("missing field 'language'"), std::string::npos) << neither.body;
}

}  // namespace
}  // namespace airlock::testing
