from chromalab.cli import main

raise SystemExit(main())
