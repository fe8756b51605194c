from orchestrator.app.cli import main

raise SystemExit(main())
