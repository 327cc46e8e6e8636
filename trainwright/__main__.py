from trainwright.cli import main

raise SystemExit(main())
