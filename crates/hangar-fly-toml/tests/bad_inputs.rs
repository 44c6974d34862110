//! Bad fly.toml inputs: each gives one error naming file, line, column and the
//! dotted key, with a message that says what is wrong.

mod common;

use common::{parse_err, plan_err};

/// (fly.toml text, the exact error).
const PARSE_ERRORS: &[(&str, &str)] = &[
    (
        "[http_service]\ninternal_port = \"8080\"\n",
        "fly.toml:2:17: http_service.internal_port: expected an integer, found a string",
    ),
    (
        "[[services]]\ninternal_port = 8080\n[[services.ports]]\nport = 0\n",
        "fly.toml:4:8: services[0].ports[0].port: port 0 is outside 1-65535",
    ),
    (
        "[[services]]\ninternal_port = 8080\n[[services.ports]]\nport = 70000\n",
        "fly.toml:4:8: services[0].ports[0].port: port 70000 is outside 1-65535",
    ),
    (
        "[[services]]\ninternal_port = 8080\n[[services.ports]]\nport = 80\nhandlers = [\"http\", \"websocket\"]\n",
        "fly.toml:5:21: services[0].ports[0].handlers[1]: unknown handler \"websocket\" (expected one of http, tls, pg_tls, proxy_proto, edge_http)",
    ),
    (
        "[[services]]\ninternal_port = 8080\ntcp_checks = [{ interval = \"10x\" }]\n",
        "fly.toml:3:28: services[0].tcp_checks[0].interval: invalid duration \"10x\" (expected a number and a unit, like \"10s\", \"500ms\" or \"1m30s\")",
    ),
    (
        "[[vm]]\nmemory = \"lots\"\n",
        "fly.toml:2:10: vm[0].memory: invalid memory size \"lots\" (expected a size like \"512mb\" or \"1gb\")",
    ),
    (
        "app = \"a\"\n\n[[services]]\nprotocol = \"tcp\"\n",
        "fly.toml:3:1: services[0].internal_port: required (the port the app listens on)",
    ),
    (
        "[http_service]\nforce_https = true\n",
        "fly.toml:1:1: http_service.internal_port: required (the port the app listens on)",
    ),
    (
        "[deploy]\nstrategy = \"yolo\"\n",
        "fly.toml:2:12: deploy.strategy: unknown strategy \"yolo\" (expected rolling, immediate, canary or bluegreen)",
    ),
    (
        "[http_service]\ninternal_port = 80\nauto_stop_machines = \"sometimes\"\n",
        "fly.toml:3:22: http_service.auto_stop_machines: expected \"stop\", \"suspend\", \"off\", true or false, found \"sometimes\"",
    ),
    (
        "[http_service]\ninternal_port = 80\nauto_stop_machines = 1\n",
        "fly.toml:3:22: http_service.auto_stop_machines: expected \"stop\", \"suspend\", \"off\", true or false, found an integer",
    ),
    (
        "[[services]]\ninternal_port = 80\nprotocol = \"sctp\"\n",
        "fly.toml:3:12: services[0].protocol: unknown protocol \"sctp\" (expected tcp or udp)",
    ),
    (
        "[processes]\nweb = \"run web\"\n\n[[services]]\ninternal_port = 80\nprocesses = [\"web\", \"worker\"]\n",
        "fly.toml:6:21: services[0].processes[1]: unknown process group \"worker\" (this fly.toml has: web)",
    ),
    (
        "[processes]\nweb = \"sh -c 'echo hi\"\n",
        "fly.toml:2:7: processes.web: cannot split the command: unclosed single quote",
    ),
    (
        "[[vm]]\nsize = \"huge-cpu\"\n",
        "fly.toml:2:8: vm[0].size: unknown size \"huge-cpu\" (expected one of shared-cpu-1x, shared-cpu-2x, shared-cpu-4x, shared-cpu-8x, performance-1x, performance-2x, performance-4x, performance-8x, performance-16x)",
    ),
    (
        "[[vm]]\ncpu_kind = \"fast\"\n",
        "fly.toml:2:12: vm[0].cpu_kind: unknown cpu kind \"fast\" (expected shared or performance)",
    ),
    (
        "[[vm]]\ncpus = 0\n",
        "fly.toml:2:8: vm[0].cpus: must be at least 1 (got 0)",
    ),
    (
        "[[vm]]\nmemory = \"1gb\"\nmemory_mb = 1024\n",
        "fly.toml:3:1: vm[0].memory_mb: give memory or memory_mb, not both",
    ),
    (
        "[mounts]\nsource = \"data\"\n",
        "fly.toml:1:1: mounts.destination: required (where the volume is mounted)",
    ),
    (
        "[mounts]\nsource = \"data\"\ndestination = \"data\"\n",
        "fly.toml:3:15: mounts.destination: must be an absolute path (got \"data\")",
    ),
    (
        "[[mounts]]\nsource = \"data\"\ndestination = \"/data\"\ninitial_size = \"big\"\n",
        "fly.toml:4:16: mounts[0].initial_size: invalid volume size \"big\" (expected a size like \"10gb\", at least 1gb)",
    ),
    (
        "[[restart]]\npolicy = \"sometimes\"\n",
        "fly.toml:2:10: restart[0].policy: unknown restart policy \"sometimes\" (expected always, never or on-failure)",
    ),
    (
        "[[files]]\nguest_path = \"etc/app.conf\"\nraw_value = \"aGk=\"\n",
        "fly.toml:2:14: files[0].guest_path: must be an absolute path (got \"etc/app.conf\")",
    ),
    (
        "[[files]]\nguest_path = \"/etc/app.conf\"\nraw_value = \"aGk=\"\nlocal_path = \"app.conf\"\n",
        "fly.toml:1:1: files[0]: give exactly one of local_path, raw_value or secret_name",
    ),
    (
        "[[files]]\nguest_path = \"/etc/app.conf\"\nraw_value = \"not base64!\"\n",
        "fly.toml:3:13: files[0].raw_value: must be base64-encoded",
    ),
    (
        "[checks.alive]\nport = 8080\n",
        "fly.toml:1:1: checks.alive.type: required (tcp or http)",
    ),
    (
        "[checks.alive]\ntype = \"grpc\"\nport = 8080\n",
        "fly.toml:2:8: checks.alive.type: unknown check type \"grpc\" (expected tcp or http)",
    ),
    (
        "[checks.alive]\ntype = \"http\"\nport = 8080\npath = \"health\"\n",
        "fly.toml:4:8: checks.alive.path: must start with / (got \"health\")",
    ),
    (
        "[[services]]\ninternal_port = 80\n[[services.tcp_checks]]\npath = \"/\"\n",
        "fly.toml:4:1: services[0].tcp_checks[0].path: only http checks take this key",
    ),
    (
        "kill_signal = \"SIGFOO\"\n",
        "fly.toml:1:15: kill_signal: unknown signal \"SIGFOO\" (expected a name like \"SIGINT\" or \"SIGTERM\")",
    ),
    (
        "kill_timeout = \"5 minutes\"\n",
        "fly.toml:1:16: kill_timeout: invalid duration \"5 minutes\" (expected a number and a unit, like \"10s\", \"500ms\" or \"1m30s\")",
    ),
    (
        "kill_timeout = -5\n",
        "fly.toml:1:16: kill_timeout: a duration cannot be negative (got -5)",
    ),
    (
        "[http_service]\ninternal_port = 80\n[http_service.concurrency]\nsoft_limit = 30\nhard_limit = 25\n",
        "fly.toml:4:14: http_service.concurrency.soft_limit: soft_limit (30) is above hard_limit (25)",
    ),
    (
        "[http_service]\ninternal_port = 80\n[http_service.concurrency]\ntype = \"bytes\"\n",
        "fly.toml:4:8: http_service.concurrency.type: unknown concurrency type \"bytes\" (expected connections or requests)",
    ),
    (
        "[http_service]\ninternal_port = 80\nmin_machines_running = -1\n",
        "fly.toml:3:24: http_service.min_machines_running: must be at least 0 (got -1)",
    ),
    (
        "[env]\nA = { b = 1 }\n",
        "fly.toml:2:5: env.A: expected a string, found a table",
    ),
    (
        "app = 5\n",
        "fly.toml:1:7: app: expected a string, found an integer",
    ),
    (
        "services = \"web\"\n",
        "fly.toml:1:12: services: expected an array of tables, found a string",
    ),
    (
        "[[services]]\ninternal_port = 80\n[[services.ports]]\nstart_port = 9000\nend_port = 8000\n",
        "fly.toml:4:14: services[0].ports[0].start_port: start_port (9000) is above end_port (8000)",
    ),
    (
        "[[services]]\ninternal_port = 80\n[[services.ports]]\nhandlers = [\"tls\"]\n",
        "fly.toml:3:1: services[0].ports[0].port: required (or start_port and end_port)",
    ),
    (
        "[experimental]\ncmd = [\"run\", 5]\n",
        "fly.toml:2:15: experimental.cmd[1]: expected a string, found an integer",
    ),
    (
        "machine_config = \"a.json\"\n[experimental]\nmachine_config = \"b.json\"\n",
        "fly.toml:3:18: experimental.machine_config: machine_config is given both at the top level and in [experimental]; keep one",
    ),
    (
        "[processes]\nWeb = \"run\"\n",
        "fly.toml:2:1: processes.Web: a process group name must be lowercase letters, digits, '-' and '_'",
    ),
    (
        "[build]\nimage = \"\"\n",
        "fly.toml:2:9: build.image: must not be empty",
    ),
];

#[test]
fn each_bad_input_names_file_line_key_and_problem() {
    let mut wrong = Vec::new();
    for (text, expected) in PARSE_ERRORS {
        let got = parse_err(text);
        if got != *expected {
            wrong.push(format!(
                "input:\n{text}\nexpected: {expected}\n     got: {got}\n"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(PARSE_ERRORS.len() >= 25);
}

#[test]
fn toml_syntax_errors_give_file_and_line() {
    assert_eq!(
        parse_err("app = \"unterminated\n"),
        "fly.toml:1:20: TOML syntax error: invalid basic string, expected `\"`"
    );
    assert_eq!(
        parse_err("app = \"a\"\napp = \"b\"\n"),
        "fly.toml:2:1: TOML syntax error: duplicate key"
    );
    assert_eq!(
        parse_err("[http_service\ninternal_port = 8080\n"),
        "fly.toml:1:14: TOML syntax error: unclosed table, expected `]`"
    );
}

#[test]
fn errors_found_while_planning_name_the_key() {
    // The group's machine config is checked by hangar-types; a problem is
    // reported at the fly.toml section it came from.
    assert_eq!(
        plan_err("[[vm]]\nmemory_mb = 8\n"),
        "fly.toml:1:1: vm[0]: guest.memory_mb: must be at least 16 (got 8)"
    );
    assert_eq!(
        plan_err(
            "machine_config = '{\"containers\": [{\"name\": \"a\", \"image\": \"x\"}]}'\ncontainer = \"b\"\n"
        ),
        "fly.toml:2:13: container: no container named \"b\" in machine_config (it has: a)"
    );
    assert_eq!(
        plan_err(
            "machine_config = '''{\"containers\": [{\"name\": \"a\", \"image\": \"x\",\n  \"depends_on\": [{\"container\": \"db\"}]}]}'''\n"
        ),
        "fly.toml:1:18: machine_config: containers[0].depends_on[0]: no container named \"db\""
    );
    // Inline JSON errors point into the fly.toml.
    assert_eq!(
        plan_err(
            "app = \"a\"\nmachine_config = '''\n{\n  \"containers\": [{\"image\": 7}]\n}\n'''\n"
        ),
        "fly.toml:4:28: machine_config: config.containers[0].image: invalid type: integer `7`, expected a string"
    );
    assert_eq!(
        plan_err("machine_config = '{\"guest\": {\"cpus\": \"two\"}}'\n"),
        "fly.toml:1:42: machine_config: config.guest.cpus: invalid type: string \"two\", expected i64"
    );
    let missing = plan_err("machine_config = \"no-such-file.json\"\n");
    assert!(
        missing.starts_with("fly.toml:1:18: machine_config: cannot read ./no-such-file.json: "),
        "{missing}"
    );
    let missing = plan_err("[[files]]\nguest_path = \"/etc/a\"\nlocal_path = \"no-such-file\"\n");
    assert!(
        missing.starts_with("fly.toml:3:14: files[0].local_path: cannot read ./no-such-file: "),
        "{missing}"
    );
}

#[test]
fn no_image_and_no_build_says_how_to_give_one() {
    let toml = common::parse("app = \"a\"\n").unwrap();
    assert_eq!(
        toml.plan("").unwrap_err().to_string(),
        "fly.toml: build.image: no image to deploy: set [build] image or pass --image"
    );
    assert_eq!(toml.deploy_image(Some("img:1")).unwrap(), "img:1");
    let with_image = common::parse("[build]\nimage = \"reg/app:2\"\n").unwrap();
    assert_eq!(with_image.deploy_image(None).unwrap(), "reg/app:2");
    assert_eq!(with_image.deploy_image(Some("over:3")).unwrap(), "over:3");
}

#[test]
fn unknown_keys_are_warnings_not_errors() {
    let toml = common::parse(
        "app = \"a\"\nswap_size = 512\nconsole_command = \"/bin/sh\"\n[http_service]\ninternal_port = 80\nsticky = true\n[deploy]\nrelease_command = \"migrate\"\n",
    )
    .unwrap();
    let w: Vec<String> = toml.warnings().iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        [
            "fly.toml:2:1: swap_size: unknown key, ignored",
            "fly.toml:3:1: console_command: not used by hangar, ignored",
            "fly.toml:6:1: http_service.sticky: unknown key, ignored",
            "fly.toml:8:1: deploy.release_command: not used by hangar, ignored",
        ]
    );
    assert_eq!(toml.plan("img").unwrap().len(), 1);
}
