from orchestrators.cli.main import main

raise SystemExit(main())
