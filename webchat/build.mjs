// Builds the web chat into src/sessionforce/gateway/static/ (shipped in the Python package).
//   node build.mjs           build
//   node build.mjs --check   build into a temporary folder and fail if the committed files differ
// BUILD-INFO.json records a hash of every source file, so a test without Node can still tell that the
// committed build is older than its sources; --check compares the built bytes themselves.
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const target = join(here, "..", "src", "sessionforce", "gateway", "static");
const check = process.argv.includes("--check");
const out = check ? mkdtempSync(join(tmpdir(), "sessionforce-webchat-")) : target;

/** Files whose content decides the build (the same list and hash as tests/webchat/test_build.py). */
function sourceFiles() {
  const files = ["build.mjs", "package.json", "package-lock.json", "tsconfig.json"];
  const walk = (dir) => {
    for (const name of readdirSync(join(here, dir)).sort()) {
      const path = join(dir, name);
      if (statSync(join(here, path)).isDirectory()) walk(path);
      else files.push(path);
    }
  };
  walk("src");
  return files.map((f) => f.split("\\").join("/")).sort();
}

function sourcesHash() {
  const hash = createHash("sha256");
  for (const file of sourceFiles()) {
    hash.update(file);
    hash.update("\0");
    hash.update(readFileSync(join(here, file)));
    hash.update("\0");
  }
  return hash.digest("hex");
}

const common = {
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020", "chrome100", "firefox100", "safari15"],
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
};

if (!check) {
  rmSync(out, { recursive: true, force: true });
}
mkdirSync(out, { recursive: true });
await build({ ...common, entryPoints: [join(here, "src", "page.ts")], outfile: join(out, "chat.js") });
await build({ ...common, entryPoints: [join(here, "src", "widget.ts")], outfile: join(out, "widget.js") });
await build({ ...common, entryPoints: [join(here, "src", "static", "chat.css")], outfile: join(out, "chat.css") });
for (const page of ["index.html", "embed.html"]) copyFileSync(join(here, "src", "static", page), join(out, page));
// The licences of what chat.js bundles, shipped beside it.
const deps = Object.keys(JSON.parse(readFileSync(join(here, "package.json"), "utf8")).dependencies).sort();
writeFileSync(
  join(out, "THIRD-PARTY-LICENSES.txt"),
  deps
    .map((dep) => {
      const { version } = JSON.parse(readFileSync(join(here, "node_modules", dep, "package.json"), "utf8"));
      const licence = readFileSync(join(here, "node_modules", dep, "LICENSE"), "utf8").trim();
      return `${dep} ${version} (bundled in chat.js)\n\n${licence}\n`;
    })
    .join("\n" + "-".repeat(72) + "\n\n"),
);

const files = {};
for (const name of readdirSync(out).sort()) {
  if (name === "BUILD-INFO.json") continue;
  const bytes = readFileSync(join(out, name));
  files[name] = {
    bytes: bytes.length,
    gzip: gzipSync(bytes, { level: 9 }).length,
    sha256: createHash("sha256").update(bytes).digest("hex"),
  };
}
const info = { sources_sha256: sourcesHash(), files };
writeFileSync(join(out, "BUILD-INFO.json"), JSON.stringify(info, null, 2) + "\n");

if (check) {
  const problems = [];
  const names = new Set([...readdirSync(out), ...readdirSync(target)]);
  for (const name of [...names].sort()) {
    let a = null;
    let b = null;
    try { a = readFileSync(join(out, name)); } catch {}
    try { b = readFileSync(join(target, name)); } catch {}
    if (a === null) problems.push(`${name}: committed but not built`);
    else if (b === null) problems.push(`${name}: built but not committed`);
    else if (!a.equals(b)) problems.push(`${name}: differs from a fresh build`);
  }
  rmSync(out, { recursive: true, force: true });
  if (problems.length) {
    console.error(`The committed build in ${relative(process.cwd(), target)} is out of date:\n  ${problems.join("\n  ")}\nRun: cd webchat && npm ci && npm run build`);
    process.exit(1);
  }
  console.log("webchat: the committed build matches the sources");
} else {
  for (const [name, f] of Object.entries(files)) console.log(`${name.padEnd(22)} ${String(f.bytes).padStart(7)} B  ${String(f.gzip).padStart(6)} B gzip`);
}
