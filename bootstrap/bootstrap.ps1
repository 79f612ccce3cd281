# Install ghboot and run it (Windows PowerShell 5.1+ and PowerShell 7).
#
#   bootstrap\bootstrap.ps1 [-Binary PATH] [-InstallOnly] [--mode M] [--nats-type T] [--terraform-backend B] [ghboot args...]
#
# Installs with `cargo install --path <this repo>` unless -Binary names a ghboot.exe; the seeds' flags and
# everything else are passed to ghboot unchanged.
[CmdletBinding(PositionalBinding = $false)]
param(
    [string]$Binary = "",
    [switch]$InstallOnly,
    [Parameter(ValueFromRemainingArguments = $true)]
    [string[]]$Rest = @()
)
$ErrorActionPreference = "Stop"
$repo = Split-Path -Parent $PSScriptRoot
$cargoHome = if ($env:CARGO_HOME) { $env:CARGO_HOME } else { Join-Path $HOME ".cargo" }
$binDir = if ($env:GHBOOT_BIN_DIR) { $env:GHBOOT_BIN_DIR } else { Join-Path $cargoHome "bin" }

if ($Binary -ne "") {
    if (-not (Test-Path -LiteralPath $Binary -PathType Leaf)) { Write-Error "bootstrap: $Binary does not exist"; exit 66 }
    New-Item -ItemType Directory -Force -Path $binDir | Out-Null
    $tmp = Join-Path $binDir "ghboot.exe.tmp"
    Copy-Item -LiteralPath $Binary -Destination $tmp -Force
    Move-Item -LiteralPath $tmp -Destination (Join-Path $binDir "ghboot.exe") -Force
    $ghboot = Join-Path $binDir "ghboot.exe"
} else {
    if (-not (Get-Command cargo -ErrorAction SilentlyContinue)) {
        Write-Error "bootstrap: cargo not found; install Rust from https://rustup.rs or pass -Binary PATH"
        exit 69
    }
    & cargo install --quiet --locked --path $repo --root (Split-Path -Parent $binDir)
    if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
    $ghboot = Join-Path $binDir "ghboot.exe"
}
Write-Host "bootstrap: using $ghboot"
if ($InstallOnly) { exit 0 }
& $ghboot @Rest
exit $LASTEXITCODE
