# Install a prebuilt ghboot from a release, verified against the release's SHA256SUMS (PowerShell 5.1 or 7+).
# The sibling of install.sh, with the same environment and behaviour:
#   GHBOOT_VERSION        version to install (default: the release this script belongs to)
#   GHBOOT_DOWNLOAD_BASE  where releases are: BASE/v<version>/<asset> and BASE/v<version>/SHA256SUMS
#   GHBOOT_INSTALL_DIR    directory to put ghboot(.exe) in (default: ~/.local/bin)
#   GHBOOT_TARGET         Rust target triple of the asset, when the detected one is wrong
# The asset ghboot-<version>-<target>.tar.gz is refused, and nothing installed, when its SHA-256 differs from
# its SHA256SUMS entry or the entry is missing; only when the release has no asset for this platform is ghboot
# built with `cargo install --locked` instead, and the script says so. Prints the installed path.
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

$DefaultVersion = '0.1.0'
$Repository = 'ghboot/ghboot'

function Fail([int]$Code, [string]$Message, [string]$Help = '') {
    [Console]::Error.WriteLine("ghboot-install: error: $Message")
    if ($Help) { [Console]::Error.WriteLine("help: $Help") }
    exit $Code
}
function Say([string]$Message) { [Console]::Error.WriteLine("ghboot-install: $Message") }

$Version = if ($env:GHBOOT_VERSION) { $env:GHBOOT_VERSION } else { $DefaultVersion }
$Version = $Version -replace '^v', ''
if ($Version -notmatch '^[A-Za-z0-9.+-]+$') { Fail 64 "GHBOOT_VERSION '$Version' is not a version" "set it to a release such as $DefaultVersion" }
$Base = if ($env:GHBOOT_DOWNLOAD_BASE) { $env:GHBOOT_DOWNLOAD_BASE } else { "https://github.com/$Repository/releases/download" }
$Base = $Base.TrimEnd('/')
$InstallDir = if ($env:GHBOOT_INSTALL_DIR) { $env:GHBOOT_INSTALL_DIR } else { Join-Path $HOME '.local/bin' }

function Get-Target {
    if ($env:GHBOOT_TARGET) { return $env:GHBOOT_TARGET }
    $arch = [System.Runtime.InteropServices.RuntimeInformation]::OSArchitecture.ToString()
    $cpu = switch ($arch) { 'X64' { 'x86_64' } 'Arm64' { 'aarch64' } default { $null } }
    if (-not $cpu) { return $null }
    # Windows PowerShell 5.1 has no $IsLinux / $IsMacOS (and strict mode refuses an unset variable)
    if ((Get-Variable -Name IsLinux -ValueOnly -ErrorAction SilentlyContinue) -eq $true) { return "$cpu-unknown-linux-gnu" }
    if ((Get-Variable -Name IsMacOS -ValueOnly -ErrorAction SilentlyContinue) -eq $true) { return "$cpu-apple-darwin" }
    return "$cpu-pc-windows-msvc"
}

$Tmp = Join-Path ([System.IO.Path]::GetTempPath()) ("ghboot-install." + [guid]::NewGuid().ToString('N'))
New-Item -ItemType Directory -Path $Tmp | Out-Null

# 'ok', 'missing' (404) or 'failed'
function Fetch([string]$Url, [string]$File) {
    try {
        [Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12
        Invoke-WebRequest -Uri $Url -OutFile $File -UseBasicParsing -TimeoutSec 600
        return 'ok'
    } catch {
        $status = $null
        if ($_.Exception.PSObject.Properties['Response'] -and $_.Exception.Response) { $status = [int]$_.Exception.Response.StatusCode }
        if ($status -eq 404) { return 'missing' }
        Say "download of $Url failed: $($_.Exception.Message)"
        return 'failed'
    }
}

function Put-InPlace([string]$Bin, [string]$Exe) {
    $part = $null
    try {
        New-Item -ItemType Directory -Force -Path $InstallDir | Out-Null
        $part = Join-Path $InstallDir ".$Exe.part.$PID"
        Copy-Item -LiteralPath $Bin -Destination $part -Force
        Move-Item -LiteralPath $part -Destination (Join-Path $InstallDir $Exe) -Force
    } catch {
        if ($part) { Remove-Item -LiteralPath $part -Force -ErrorAction SilentlyContinue }
        Fail 69 "cannot write $InstallDir\$Exe" 'set GHBOOT_INSTALL_DIR to a writable directory'
    }
    Say "installed ghboot $Version to $(Join-Path $InstallDir $Exe)"
    Write-Output (Join-Path $InstallDir $Exe)
}

function Cargo-Fallback([string]$What, [string]$Exe) {
    Say "no prebuilt ghboot $Version for ${What}: building it with cargo install --locked instead (this takes minutes)"
    if (-not (Get-Command cargo -ErrorAction SilentlyContinue)) {
        Fail 69 "no prebuilt ghboot $Version for $What, and cargo is not installed" 'install Rust (https://rustup.rs) and run this again'
    }
    $src = Split-Path -Parent $PSScriptRoot
    $manifest = Join-Path $src 'Cargo.toml'
    $root = Join-Path $Tmp 'cargo'
    if ((Test-Path $manifest) -and (Select-String -Path $manifest -Pattern '^name = "ghboot"' -Quiet) -and
        (Select-String -Path $manifest -Pattern ('^version = "' + [regex]::Escape($Version) + '"') -Quiet)) {
        & cargo install --locked --path $src --root $root
    } else {
        & cargo install --locked --git "https://github.com/$Repository" --tag "v$Version" --root $root ghboot
    }
    if ($LASTEXITCODE -ne 0) { Fail 69 "cargo install of ghboot $Version failed" }
    Put-InPlace (Join-Path $root "bin/$Exe") $Exe
}

try {
    $Target = Get-Target
    $Exe = if ($Target -and $Target -like '*windows*') { 'ghboot.exe' } else { 'ghboot' }
    if (-not $Target) { Cargo-Fallback ([System.Runtime.InteropServices.RuntimeInformation]::OSDescription) $Exe; exit 0 }
    $Asset = "ghboot-$Version-$Target.tar.gz"
    $Dir = "$Base/v$Version"

    $sums = Join-Path $Tmp 'SHA256SUMS'
    switch (Fetch "$Dir/SHA256SUMS" $sums) {
        'missing' { Fail 69 "release v$Version has no SHA256SUMS at $Dir/SHA256SUMS" 'check GHBOOT_VERSION and GHBOOT_DOWNLOAD_BASE' }
        'failed' { Fail 69 "cannot download $Dir/SHA256SUMS" 'check the network, GHBOOT_VERSION and GHBOOT_DOWNLOAD_BASE' }
    }
    $want = $null
    foreach ($line in Get-Content -LiteralPath $sums) {
        $f = $line -split '\s+', 2
        if ($f.Count -lt 2) { continue }
        $name = ($f[1].Trim() -replace '^\*', '') -replace '^.*/', ''
        if ($name -eq $Asset) { $want = $f[0].ToLowerInvariant(); break }
    }
    $archive = Join-Path $Tmp $Asset
    $got = Fetch "$Dir/$Asset" $archive
    if (-not $want) {
        if ($got -eq 'missing') { Cargo-Fallback $Target $Exe; exit 0 }
        Fail 65 "SHA256SUMS of v$Version has no entry for ${Asset}: refusing to install an unverified download" 'the release is incomplete or was tampered with; report it'
    }
    if ($want -notmatch '^[0-9a-f]{64}$') { Fail 65 "SHA256SUMS of v$Version has a malformed entry for $Asset" 'the release is broken; report it' }
    if ($got -ne 'ok') { Fail 69 "cannot download $Dir/$Asset although SHA256SUMS lists it" 'check the network and run this again' }
    $hash = (Get-FileHash -Algorithm SHA256 -LiteralPath $archive).Hash.ToLowerInvariant()
    if ($hash -ne $want) {
        Fail 65 "checksum mismatch for ${Asset}: SHA256SUMS says $want, the download is $hash; nothing installed" 'the download was corrupted or tampered with; run this again, and report it if it persists'
    }
    $x = Join-Path $Tmp 'x'
    New-Item -ItemType Directory -Path $x | Out-Null
    # tar.exe ships with Windows 10 1803+ and every macOS/Linux
    & tar -xzf $archive -C $x
    if ($LASTEXITCODE -ne 0) { Fail 65 "cannot unpack $Asset" 'report the broken release' }
    $bin = @((Join-Path $x "ghboot-$Version-$Target/$Exe"), (Join-Path $x $Exe)) | Where-Object { Test-Path -LiteralPath $_ -PathType Leaf } | Select-Object -First 1
    if (-not $bin) { Fail 65 "$Asset holds no $Exe" 'report the broken release' }
    Put-InPlace $bin $Exe
} finally {
    Remove-Item -LiteralPath $Tmp -Recurse -Force -ErrorAction SilentlyContinue
}
