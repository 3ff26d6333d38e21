"""安装运维: installing the controller on a hall's PC and seeing that it is fit to run.

`service`: `hallctl install` / `uninstall` (the systemd units, the service's user, the hall file
in /etc/hall); `doctor`: `hallctl doctor`, one line per thing a hall needs to run (`findings`,
`device_checks`, `clock_sync`); `commands`: their hallctl subcommands.
"""
